# adapter_config.json of another PEFT method; use_dora on an adapter without magnitudes
cp -r "$FIX/lora/llama-qv" a
sed -i 's/"peft_type": "LORA"/"peft_type": "IA3"/' a/adapter_config.json
tk-merge -m "$FIX/models/llama" -a a -o m; echo "rc=$?"
cp -r "$FIX/lora/llama-qv" b
sed -i 's/"use_dora": false/"use_dora": true/' b/adapter_config.json
tk-merge -m "$FIX/models/llama" -a b -o m; echo "rc=$?"
ls
