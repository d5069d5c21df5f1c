"""Convert checkpoints between Hugging Face and our work directories.

    python scripts/convert.py --from_hf DIR_OR_HUB_NAME --out WORKDIR
    python scripts/convert.py --to_hf WORKDIR --out HF_DIR [--step N]

--to_hf writes a directory that transformers' BertForMaskedLM.from_pretrained loads (with the
tokenizer when the work directory has one); sparse models keep their zeros. A damaged checkpoint is named
with the intact ones that --step can convert instead.
"""
import argparse
import sys


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--from_hf", help="Hugging Face BERT directory or hub name.")
    group.add_argument("--to_hf", help="Our work directory (holding bert_config.json and checkpoints/).")
    parser.add_argument("--out", required=True, help="Output directory.")
    parser.add_argument("--step", type=int, default=None, help="--to_hf: checkpoint step (default: latest).")
    args = parser.parse_args(argv)
    from jax_bert import cli
    from jax_bert.train import convert

    try:
        out = convert.hf_to_workdir(args.from_hf, args.out) if args.from_hf else \
            convert.workdir_to_hf(args.to_hf, args.out, args.step)
    except ValueError as e:
        print(f"error: {cli.describe(e)}", file=sys.stderr)
        return 2
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
