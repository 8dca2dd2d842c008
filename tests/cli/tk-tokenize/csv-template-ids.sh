# --template with the \n escape, over two columns
tk-tokenize -q -t "$FIX/gpt2" --template 'Quote: {quote}\nAuthor: {author}' --ids "$FIX/input/quotes.csv"
