#!/usr/bin/env bash
# Download OpenAI's released GPT-2 as a Hugging Face directory (config.json + model.safetensors)
# from the Hugging Face hub, for `gpt2c train --model DIR` (fine-tuning) and `gpt2c eval`.
#   scripts/download_gpt2.sh [124M|355M|774M|1558M] [DIR]      (default: 124M into models/gpt2-124M)
set -euo pipefail
size=${1:-124M}
case "$size" in
  124M) repo=openai-community/gpt2 ;;
  355M) repo=openai-community/gpt2-medium ;;
  774M) repo=openai-community/gpt2-large ;;
  1558M) repo=openai-community/gpt2-xl ;;
  *) echo "download_gpt2.sh: size must be 124M, 355M, 774M or 1558M" >&2; exit 2 ;;
esac
dir=${2:-models/gpt2-$size}
mkdir -p "$dir"
for f in config.json model.safetensors; do
  # into a temporary name first, so an interrupted download never looks complete
  curl -fL --retry 3 -o "$dir/$f.part" "https://huggingface.co/$repo/resolve/main/$f"
  mv "$dir/$f.part" "$dir/$f"
done
echo "GPT-2 $size is in $dir"
