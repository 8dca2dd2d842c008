# --model names a directory without config.json.
mkdir model
cp "$FIX/train/model/model.safetensors" model/
tk-train --model model --data "$FIX/train/blocks" -o out
rc=$?
ls
exit $rc
