"""Test stand-in (see README.md): NVIDIA's bind_launch arguments; starts the script once."""

import argparse
import os
import sys

p = argparse.ArgumentParser()
p.add_argument("--nsockets_per_node", type=int, default=1)
p.add_argument("--ncores_per_socket", type=int, default=1)
p.add_argument("--nproc_per_node", type=int, required=True)
p.add_argument("--master_port", type=int, default=29500)
p.add_argument("script")
args, rest = p.parse_known_args()
print(
    f"bind_launch: {args.nproc_per_node} processes on {args.nsockets_per_node} sockets x "
    f"{args.ncores_per_socket} cores, master port {args.master_port}",
    flush=True,
)
os.execv(sys.executable, [sys.executable, args.script, "--local_rank", "0", *rest])
