import sys, time, traceback, torch, warnings, json
warnings.filterwarnings("ignore")
sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parents[1]))
from nnterp.toy import ToyModelUnsupported, build_toy_model, causal_lm_classes
import transformers; transformers.logging.set_verbosity_error()
types = sys.argv[1:] or list(causal_lm_classes())
res = {}
for t in types:
    t0 = time.time()
    try:
        toy = build_toy_model(t)
        n = sum(p.numel() for p in toy.model.parameters())
        ids = toy.tokenizer(["hello world"], return_tensors="pt")
        with torch.no_grad():
            out = toy.model(**ids)
        res[t] = ("ok", n, round(time.time()-t0,2), tuple(out.logits.shape))
    except ToyModelUnsupported as e:
        res[t] = ("unsupported", e.reason)
    except Exception as e:
        res[t] = ("FAIL", type(e).__name__, str(e).replace("\n"," ")[:300])
    print(t, res[t], flush=True)
print("OK", sum(r[0]=="ok" for r in res.values()), "of", len(res),
      "| unsupported", sum(r[0]=="unsupported" for r in res.values()))
