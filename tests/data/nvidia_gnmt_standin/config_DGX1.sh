#!/bin/bash
# Test stand-in (see README.md): DGX-1's settings, the fallback of run_and_time.sh.
DGXNNODES=1
DGXSYSTEM=$(basename $(readlink -f ${BASH_SOURCE[0]}) | sed 's/^config_//' | sed 's/\.sh$//' )
LR=${LR:-"2.0e-3"}
TRAIN_BATCH_SIZE=${TRAIN_BATCH_SIZE:-256}
TARGET=${TARGET:-24.0}
NUMEPOCHS=${NUMEPOCHS:-8}
DGXNGPU=8
DGXSOCKETCORES=20
DGXHT=2
DGXIBDEVICES=''
DGXNSOCKET=2
BIND_LAUNCH=1
