# config.json says 3 layers, the weights have 2: the loader names the tensor.
cp -r "$FIX/train/model" model
sed -i 's/"n_layer": 2/"n_layer": 3/' model/config.json
tk-train --model model --data "$FIX/train/blocks" -o out
rc=$?
ls
exit $rc
