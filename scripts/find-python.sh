#!/usr/bin/env sh
# Print the path of a Python >= 3.12 (jaclang 0.16.7 needs it), or explain and fail.
# Looks at PYTHON, then python3.13/python3.12/python3 on PATH, then pyenv's installs.
ok() { "$1" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 12) else 1)' >/dev/null 2>&1; }
for cand in "${PYTHON:-}" python3.12 python3.13 python3; do
  [ -n "$cand" ] || continue
  path=$(command -v "$cand" 2>/dev/null) || continue
  if ok "$path"; then echo "$path"; exit 0; fi
done
if command -v pyenv >/dev/null 2>&1; then
  root=$(pyenv root)
  for path in $(ls -d "$root"/versions/3.1[2-9]*/bin/python3 2>/dev/null | sort -V); do
    if ok "$path"; then echo "$path"; exit 0; fi
  done
fi
echo "error: jacscale needs Python >= 3.12 (jaclang 0.16.7 requires it)." >&2
echo "Install one, e.g. 'apt-get install python3.12' or 'pyenv install 3.12', or set PYTHON=/path/to/python3.12." >&2
exit 1
