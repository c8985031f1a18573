"""Test stand-in (see README.md): 'preprocesses' the training data into training.bin."""

import argparse
import os

p = argparse.ArgumentParser()
p.add_argument("--preproc-data-dir", required=True)
p.add_argument("--dataset-dir", required=True)
p.add_argument("--max-length-train", type=int, required=True)
args = p.parse_args()
with open(os.path.join(args.dataset_dir, "train.tok.clean.bpe.32000.en")) as fh:
    n = sum(1 for _ in fh)
with open(os.path.join(args.preproc_data_dir, "training.bin"), "w") as fh:
    fh.write(f"{n} sentences, max length {args.max_length_train}\n")
print(f"preprocessed {n} sentences into {args.preproc_data_dir}/training.bin", flush=True)
