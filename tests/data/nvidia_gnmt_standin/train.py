"""Test stand-in (see README.md): v0.6 :::MLL events of a GNMT run that reaches its target, with
the keys of NVIDIA's own log (mlperf-logging's v0.6 compliance checker passes it)."""

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


# the events in the order and with the keys of NVIDIA's v0.6 GNMT (its result_0.txt), so that
# mlperf-logging's v0.6 compliance checker passes the log as it passes NVIDIA's
submission = {
    "benchmark": "gnmt",
    "org": "NVIDIA",
    "division": "closed",
    "status": "onprem",
    "platform": "1xSUT stand-in",
    "entry": "{'hardware': 'stand-in', 'framework': 'stand-in of PyTorch NVIDIA Release 19.05'}",
    "poc_name": "stand-in",
    "poc_email": "stand-in@example.invalid",
}
for key, value in submission.items():
    mll(f"submission_{key}", value)
mll("cache_clear", True)
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
mll("opt_base_learning_rate", float(args.lr))
mll("init_stop")
mll("run_start")
mll("max_sequence_length", args.max_length_train, method="discard")
mll("global_batch_size", args.train_batch_size * int(os.environ["SLURM_NTASKS_PER_NODE"]))
mll("opt_learning_rate_alt_decay_func", True)
mll("opt_learning_rate_alt_warmup_func", True)
mll("opt_learning_rate_decay_interval", int(args.decay_interval))
mll("opt_learning_rate_decay_factor", 0.5)
mll("opt_learning_rate_decay_steps", 4)
mll("opt_learning_rate_remain_steps", int(args.remain_steps))
mll("opt_learning_rate_warmup_steps", int(args.warmup_steps))
for epoch in range(1, args.epochs + 1):
    mll("block_start", first_epoch_num=epoch, epoch_count=1)
    mll("epoch_start", epoch_num=epoch)
    time.sleep(0.2)
    mll("epoch_stop", epoch_num=epoch)
    mll("eval_start", epoch_num=epoch)
    bleu = round(args.target_bleu * epoch / 2, 2)
    mll("eval_accuracy", bleu, epoch_num=epoch)
    mll("eval_stop", epoch_num=epoch)
    mll("block_stop", first_epoch_num=epoch)
    if bleu >= args.target_bleu:
        break
mll("run_stop", status="success")
