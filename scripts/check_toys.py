"""Run the load-time checks (and logits match) on toy models; print one line per failure."""
import sys, time, warnings, json
warnings.filterwarnings("ignore")
sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parents[1]))
import transformers; transformers.logging.set_verbosity_error()
from nnterp.toy import build_toy_model, causal_lm_classes
from nnterp import StandardizedTransformer
from nnterp.checks import check_logits_match, run_load_checks

types = sys.argv[1:] or list(causal_lm_classes())
summary = {"ok": 0, "fail": 0, "build": 0}
for t in types:
    try:
        toy = build_toy_model(t)
    except Exception as e:
        summary["build"] += 1
        print(f"{t:28s} BUILD {type(e).__name__}: {str(e)[:150]}", flush=True)
        continue
    t0 = time.time()
    try:
        m = StandardizedTransformer(toy.model, tokenizer=toy.tokenizer, enable_attention_probs=True, check_renaming=False)
        results = run_load_checks(m) + [check_logits_match(m)]
    except Exception as e:
        summary["fail"] += 1
        print(f"{t:28s} ERROR {type(e).__name__}: {str(e)[:300]}", flush=True)
        continue
    bad = [r for r in results if r.failed]
    na = [r.name.value for r in results if r.status.value == "n/a"]
    summary["fail" if bad else "ok"] += 1
    status = "FAIL " + " | ".join(f"{r.name.value}: {r.message[:160]}" for r in bad) if bad else "ok"
    print(f"{t:28s} {time.time()-t0:5.2f}s n/a={na} {status}", flush=True)
print(summary)
