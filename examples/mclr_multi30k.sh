#!/usr/bin/env bash
# mCLR on Multi30k: one many-to-many transformer trained on English-centric pairs (en<->de, en<->fr,
# en<->cs) with the contrastive term, then translation in a zero-shot direction (de->fr) and sacreBLEU.
#
#   bash examples/mclr_multi30k.sh [WORK_DIR] [MAX_UPDATE]
#
# Needs the Multi30k files in $ST_CONTRAST_DATA/translation/multi30k (see ../shared/data/README.md).
# CPU-sized defaults (a small transformer, 300 updates: low BLEU); on a GPU raise MAX_UPDATE, the model
# size (--encoder-embed-dim 512 ...) and --max-tokens, and drop --cpu.
set -euo pipefail
WORK=${1:-outputs/mclr_example}
MAX_UPDATE=${2:-300}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
PAIRS=en-de,de-en,en-fr,fr-en,en-cs,cs-en
cd "$(dirname "$0")/.."

# 1. joint BPE (subword-nmt style "@@" pieces) and one fairseq-preprocess per pair with a shared dictionary
python -m benchmarks.quality_mclr_multi30k --work-dir "$WORK" --runs ""

# 2. train (the wrapper adds --user-dir and makes fairseq 0.12 checkpoints loadable under torch >= 2.6)
st-contrast fairseq-train "$WORK/data-bin" --task translation_multilingual_contrastive \
    --lang-pairs $PAIRS --langs en,de,fr,cs \
    --arch transformer --share-all-embeddings --encoder-layers 2 --decoder-layers 2 \
    --encoder-embed-dim 128 --decoder-embed-dim 128 --encoder-ffn-embed-dim 512 --decoder-ffn-embed-dim 512 \
    --encoder-attention-heads 4 --decoder-attention-heads 4 --dropout 0.1 \
    --criterion label_smoothed_cross_entropy_with_contrastive --label-smoothing 0.1 \
    --contrastive-lambda 1.0 --contrastive-temperature 0.1 \
    --optimizer adam --adam-betas '(0.9, 0.98)' --lr 0.002 --lr-scheduler inverse_sqrt --warmup-updates 100 \
    --clip-norm 1.0 --max-tokens 2048 --max-update "$MAX_UPDATE" --save-dir "$WORK/checkpoints/example" \
    --no-epoch-checkpoints --disable-validation --log-format simple --log-interval 10 --num-workers 0 --cpu

# 3. zero-shot de->fr: the target language is forced by the decoder's first token (LANG_TOK_FR)
st-contrast fairseq-generate "$WORK/data-bin" --task translation_multilingual_contrastive \
    --lang-pairs $PAIRS --langs en,de,fr,cs --source-lang de --target-lang fr --gen-subset test \
    --path "$WORK/checkpoints/example/checkpoint_last.pt" --beam 4 --batch-size 128 --remove-bpe --cpu \
    --num-workers 0 > "$WORK/gen_de-fr.txt"
grep '^D-' "$WORK/gen_de-fr.txt" | sort -t- -k2 -n | cut -f3 > "$WORK/hyp_de-fr.txt"
python -m sacrebleu "$WORK/bpe/test.raw.fr" -i "$WORK/hyp_de-fr.txt" -m bleu -b
