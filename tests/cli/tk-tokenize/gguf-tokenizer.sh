# a llama.cpp GGUF as the tokenizer: the same ids as the Hugging Face GPT-2
# tokenizer gives (the expected output is csv-author-ids.stdout, made by the
# reference with tokenizer.json)
tk-tokenize -q -t "$FIX/gguf/ggml-vocab-gpt-2.gguf" --column=author --ids "$FIX/input/quotes.csv"
