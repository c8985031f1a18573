#!/bin/bash
# Test stand-in (see README.md) with the control flow of NVIDIA's run_and_time.sh.
DGXSYSTEM=${DGXSYSTEM:-"DGX1"}
if [[ -f config_${DGXSYSTEM}.sh ]]; then
  source config_${DGXSYSTEM}.sh
else
  source config_DGX1.sh
  echo "Unknown system, assuming DGX1"
fi
SLURM_NTASKS_PER_NODE=${SLURM_NTASKS_PER_NODE:-$DGXNGPU}
SLURM_JOB_ID=${SLURM_JOB_ID:-$RANDOM}
MULTI_NODE=${MULTI_NODE:-''}
echo "Run vars: id $SLURM_JOB_ID gpus $SLURM_NTASKS_PER_NODE mparams $MULTI_NODE"
echo "system $DGXSYSTEM: DGXNGPU=$DGXNGPU DGXNSOCKET=$DGXNSOCKET DGXSOCKETCORES=$DGXSOCKETCORES DGXHT=$DGXHT"

set -e
start=$(date +%s)
start_fmt=$(date +%Y-%m-%d\ %r)
echo "STARTING TIMING RUN AT $start_fmt"

BIND_LAUNCH=${BIND_LAUNCH:-1}
MATH=${MATH:-fp16}
if [[ $BIND_LAUNCH -eq 1 ]]; then
  LAUNCH_OPT="bind_launch --nsockets_per_node ${DGXNSOCKET} --ncores_per_socket ${DGXSOCKETCORES} --nproc_per_node ${SLURM_NTASKS_PER_NODE} ${MULTI_NODE}"
else
  LAUNCH_OPT="bind_launch --nproc_per_node ${SLURM_NTASKS_PER_NODE} ${MULTI_NODE}"
fi

python -m ${LAUNCH_OPT} train.py \
  --save gnmt_wmt16 \
  --dataset-dir /data \
  --preproc-data-dir /preproc_data \
  --target-bleu $TARGET \
  --epochs "${NUMEPOCHS}" \
  --math ${MATH} \
  --max-length-train ${MAX_SEQ_LEN} \
  --train-batch-size $TRAIN_BATCH_SIZE \
  --test-batch-size $TEST_BATCH_SIZE \
  --lr $LR \
  --warmup-steps $WARMUP_STEPS \
  --remain-steps $REMAIN_STEPS \
  --decay-interval $DECAY_INTERVAL \
  $EXTRA_OPTS ; ret_code=$?

if [[ $ret_code != 0 ]]; then exit $ret_code; fi
end=$(date +%s)
echo "ENDING TIMING RUN AT $(date +%Y-%m-%d\ %r)"
echo "RESULT,RNN_TRANSLATOR,,$(( end - start )),nvidia,$start_fmt"
