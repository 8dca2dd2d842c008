tk-train --data "$FIX/train/blocks" -o out
