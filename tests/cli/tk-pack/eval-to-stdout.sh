# An eval split needs -o.
tk-pack --eval-fraction 0.1 x.tks > blocks.tks
