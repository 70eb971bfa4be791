"""The thesis' own numbers (chapter 5; SPEC.md), beside which `fv reproduce` puts fv's.

Tables 5.2 (FVD) and 5.3 (DEA, AEA and their WN variants) per emotion, in fv.metrics.report.GROUPS' order (the
thesis': all, angry, disgust, surprise, sad, happy, fear); of tables 5.4 and 5.5 the aggregate ArcFace cosine
distances (the columns SPEC.md quotes). The thesis scored MUG's 158 test videos with TF-Hub's I3D and DeepFace.
"""

from __future__ import annotations

GROUPS = ("all", "anger", "disgust", "surprise", "sadness", "happiness", "fear")

# table 5.2: FVD per group (GROUPS order), as printed in the thesis
_FVD = """
LFDM               291 395 387 431 446 467 395
baseline           430 580 494 566 683 491 646
onlyEM             346 465 461 520 451 397 555
onlyDM             100 186 227 245 203 206 230
EM-DM              120 203 237 247 194 221 277
both_retrievedMcs  287 650 403 402 296 335 678
"""
# table 5.3: DEA, AEA, DEA_WN, AEA_WN per group and setting, as printed in the thesis
_EMOTION = """
all        LFDM               0.58 0.60 0.23 0.37
all        baseline           0.74 0.70 0.63 0.58
all        onlyEM             0.76 0.76 0.54 0.52
all        onlyDM             0.66 0.64 0.46 0.49
all        EM-DM              0.63 0.58 0.56 0.52
all        both_retrievedMcs  0.75 0.74 0.53 0.52
anger      LFDM               0.43 0.47 0.17 0.32
anger      baseline           0.73 0.72 0.67 0.57
anger      onlyEM             0.50 0.57 0.40 0.43
anger      onlyDM             0.60 0.60 0.40 0.47
anger      EM-DM              0.50 0.51 0.50 0.50
anger      both_retrievedMcs  0.83 0.81 0.37 0.44
disgust    LFDM               0.63 0.63 0.17 0.34
disgust    baseline           0.83 0.72 0.50 0.53
disgust    onlyEM             0.93 0.91 0.53 0.52
disgust    onlyDM             0.73 0.69 0.37 0.43
disgust    EM-DM              0.77 0.66 0.43 0.46
disgust    both_retrievedMcs  0.43 0.51 0.23 0.39
surprise   LFDM               0.59 0.60 0.21 0.36
surprise   baseline           0.66 0.66 0.59 0.57
surprise   onlyEM             0.90 0.82 0.55 0.56
surprise   onlyDM             0.59 0.57 0.41 0.48
surprise   EM-DM              0.55 0.53 0.62 0.54
surprise   both_retrievedMcs  0.97 0.91 0.83 0.68
sadness    LFDM               0.43 0.46 0.19 0.33
sadness    baseline           0.52 0.52 0.62 0.53
sadness    onlyEM             0.62 0.64 0.52 0.49
sadness    onlyDM             0.52 0.52 0.52 0.44
sadness    EM-DM              0.43 0.42 0.57 0.43
sadness    both_retrievedMcs  0.48 0.53 0.57 0.44
happiness  LFDM               0.90 0.87 0.39 0.51
happiness  baseline           1.00 0.97 0.87 0.72
happiness  onlyEM             1.00 1.00 0.74 0.62
happiness  onlyDM             0.94 0.90 0.77 0.64
happiness  EM-DM              0.97 0.87 0.81 0.69
happiness  both_retrievedMcs  1.00 0.98 0.81 0.66
fear       LFDM               0.35 0.42 0.24 0.36
fear       baseline           0.53 0.45 0.41 0.49
fear       onlyEM             0.41 0.47 0.41 0.46
fear       onlyDM             0.47 0.42 0.18 0.44
fear       EM-DM              0.35 0.29 0.29 0.43
fear       both_retrievedMcs  0.65 0.55 0.24 0.49
"""


def _rows(text: str) -> list[list[str]]:
    return [line.split() for line in text.strip().splitlines()]


FVD: dict[str, tuple[int, ...]] = {r[0]: tuple(int(x) for x in r[1:]) for r in _rows(_FVD)}
EMOTION: dict[str, dict[str, tuple[float, ...]]] = {}
for _r in _rows(_EMOTION):
    EMOTION.setdefault(_r[0], {})[_r[1]] = tuple(float(x) for x in _r[2:])

# tables 5.4 / 5.5, all emotions: ArcFace cosine distance of ACD-I (to the real frame 0) and ACD-C (consecutive)
ACD_I_ARCFACE_COS = {"LFDM": 0.29, "baseline": 0.45, "onlyEM": 0.46, "onlyDM": 0.16, "EM-DM": 0.16,
                     "both_retrievedMcs": 0.24}
ACD_C_ARCFACE_COS = {"LFDM": 0.10, "baseline": 0.11, "onlyEM": 0.10, "onlyDM": 0.08, "EM-DM": 0.08,
                     "both_retrievedMcs": 0.13}
