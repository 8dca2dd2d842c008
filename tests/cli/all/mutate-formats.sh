# Every format tk reads (safetensors, config.json, GGUF, token shards,
# tokenizer.json, a PEFT adapter's two files, a bitsandbytes 4-bit model,
# trainer_state.json), mutated: byte flips, truncations and structured lies
# (lengths, offsets, counts, dims made huge, negative or zero) through the
# tool that reads each.  Every case must exit 0, or 1/2 with a tk-NAME:
# message; never crash, hang or trip a sanitizer.  A short deterministic
# sample (--quick); `make mutate-formats` runs the full set under
# AddressSanitizer + UBSan.
unset TK_BIN # the tools are on PATH
"$TK_ROOT/tests/mutate-formats" --quick --jobs 2 --timeout 30
