# The output directory cannot be created (its parent is a file).
touch file
tk-train --model "$FIX/train/model" --data "$FIX/train/blocks" -o file/out
