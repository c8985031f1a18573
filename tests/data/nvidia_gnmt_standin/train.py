"""Test stand-in (see README.md): v0.6 :::MLL events of a GNMT run that reaches its target."""

import argparse
import json
import os
import time

p = argparse.ArgumentParser()
for name in (
    "--save",
    "--dataset-dir",
    "--preproc-data-dir",
    "--math",
    "--lr",
    "--remain-steps",
    "--warmup-steps",
    "--decay-interval",
):
    p.add_argument(name, required=True)
for name in (
    "--epochs",
    "--max-length-train",
    "--train-batch-size",
    "--test-batch-size",
    "--local_rank",
    "--seed",
):
    p.add_argument(name, type=int, default=None)
p.add_argument("--target-bleu", type=float, required=True)
p.add_argument("--fused-attention", action="store_true")
p.add_argument("--fused-xentropy", action="store_true")
p.add_argument("--no-log-all-ranks", action="store_true")
args = p.parse_args()


def mll(key, value=None, **metadata):
    metadata.update({"file": "train.py", "lineno": 1})
    print(
        f":::MLL {time.time():.3f} {key}: " + json.dumps({"value": value, "metadata": metadata}),
        flush=True,
    )


mll("init_start")
print(f"0: Run arguments: {vars(args)}", flush=True)
training_bin = os.path.join(args.preproc_data_dir, "training.bin")
print(f"0: prepared data: {open(training_bin).read().strip()}", flush=True)
print(f"0: dataset writable: {os.access(args.dataset_dir, os.W_OK)}", flush=True)
print(f"0: prepared data writable: {os.access(args.preproc_data_dir, os.W_OK)}", flush=True)
save = os.path.join("results", args.save)
os.makedirs(save, exist_ok=True)
with open(os.path.join(save, "log_rank_0.log"), "w") as fh:
    fh.write(f"uid {os.getuid()} gid {os.getgid()}\n")
mll("run_start")
mll("global_batch_size", args.train_batch_size * int(os.environ["SLURM_NTASKS_PER_NODE"]))
for epoch in range(1, args.epochs + 1):
    mll("epoch_start", epoch_num=epoch)
    time.sleep(0.2)
    bleu = round(args.target_bleu * epoch / 2, 2)
    mll("eval_accuracy", bleu, epoch_num=epoch)
    if bleu >= args.target_bleu:
        break
mll("run_stop", status="success")
