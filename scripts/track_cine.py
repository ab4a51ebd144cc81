"""Every propagation design on the bundled cine (docs/tracking.md, issue 19).

    PYTHONPATH=$PWD python scripts/track_cine.py litemedsam,samusa-lite legacy,motion,box,default

For each model, prompt (the sample's 5 boundary points on frame 7, or its box) and design
(SAMUSA_TRACKER; "default": the model's own), one line: mean and worst Dice over the 15
frames, the frames held, and Dice per frame. Embeddings are shared across runs.
"""
import json, os, sys, numpy as np, time
from pathlib import Path
from SAMUSALib.engine import Session
from SAMUSALib.frames import FrameSource
from SAMUSALib.io import read_image
from SAMUSALib.backends.litemedsam.backend import shared_embeddings, TRACKER_ENV
from SAMUSALib.models import load_model
from SAMUSALib.evaluation.metrics import dice
S=Path("Resources/Samples")
a,_=read_image(S/"carotid_cine.nrrd"); m,_=read_image(S/"carotid_cine_masks.nrrd"); m=m>0
pr=json.loads((S/"carotid_cine_prompts.json").read_text())["objects"][0]
box=json.loads((S/"carotid_cine_prompts_box.json").read_text())["objects"][0]["prompts"][0]
names=sys.argv[1].split(","); designs=sys.argv[2].split(",")
with shared_embeddings():
  for name in names:
    model=load_model(name,device="cpu")
    for kind in ("boundary","box"):
      for d in designs:
        if d=="default": os.environ.pop(TRACKER_ENV,None)
        else: os.environ[TRACKER_ENV]=d
        s=Session(FrameSource(a),model); s.set_window(1,(0,14))
        if kind=="boundary": s.add_prompt(1,7,boundary=np.array(pr["prompts"][0]["boundary"]))
        else: s.add_prompt(1,7,box=box["box"])
        t=time.time(); rep=s.propagate(); p=s.masks(1)
        sc=[dice(p[f],m[f]) for f in range(15)]
        print(name,kind,d,"mean %.3f worst %.3f held %s  %.1fs"%(np.mean(sc),min(sc),rep.held,time.time()-t),[round(x,2) for x in sc],flush=True)
