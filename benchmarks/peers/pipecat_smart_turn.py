"""Runs inside the Pipecat side environment: Pipecat's own smart-turn v3 probabilities.

``python pipecat_smart_turn.py MODEL.onnx CLIPS.npz`` prints one JSON list: the probability
``LocalSmartTurnAnalyzerV3`` gives each clip (16 kHz float32 arrays in the npz, in key order).
"""

import json
import sys

import numpy as np
from loguru import logger

logger.remove()

from pipecat.audio.turn.smart_turn.local_smart_turn_v3 import LocalSmartTurnAnalyzerV3  # noqa: E402

analyzer = LocalSmartTurnAnalyzerV3(smart_turn_model_path=sys.argv[1], sample_rate=16000)
analyzer.set_sample_rate(16000)
clips = np.load(sys.argv[2])
print(json.dumps([analyzer._predict_endpoint(clips[key])["probability"] for key in sorted(clips.files)]))
