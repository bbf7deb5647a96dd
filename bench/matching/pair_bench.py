#!/usr/bin/env python3
"""Same pair verification as services/instance-matching, in python3-opencv, on the same
grey working-size images (written by bench.ts). Prints one JSON line of figures.

Usage: /usr/bin/python3 bench/matching/pair_bench.py <dir written by bench.ts>
"""
import json
import statistics
import sys
import time

import cv2
import numpy as np

d = sys.argv[1]
spec = json.load(open(f"{d}/spec.json"))
# Same as each service worker process: one OpenCV thread (parallelism comes from processes).
cv2.setNumThreads(spec.get("threads", 1))
sift = cv2.SIFT_create(nfeatures=spec["maxKeypoints"])
images = {name: cv2.imread(f"{d}/{name}.png", cv2.IMREAD_GRAYSCALE) for name in spec["images"]}

extract_ms = []
feats = {}
for name, img in images.items():
    t = time.perf_counter()
    kps, desc = sift.detectAndCompute(img, None)
    extract_ms.append((time.perf_counter() - t) * 1000)
    pts = np.float32([k.pt for k in kps[: spec["maxKeypoints"]]])
    desc = desc[: spec["maxKeypoints"]] if desc is not None else None
    if desc is not None and spec.get("kernel") == "rootsift":
        # The service's kernel (descriptor.match.ts): L1-normalised, square-rooted, once per image.
        desc = np.sqrt(desc / np.maximum(desc.sum(axis=1, keepdims=True), 1e-9)).astype(np.float32)
    feats[name] = (pts, desc)

matcher = cv2.BFMatcher(cv2.NORM_L2)


def ransac(pa, pb, pairs):
    """pairs: (query index, train index) after the ratio test and the one-to-one filter."""
    if len(pairs) < 8:
        return 0
    src = np.float32([pa[q] for q, _ in pairs])
    dst = np.float32([pb[t] for _, t in pairs])
    M, inl = cv2.estimateAffinePartial2D(src, dst, method=cv2.RANSAC, ransacReprojThreshold=spec["reprojPx"], maxIters=2000, confidence=0.99, refineIters=10)
    return 0 if M is None else int(inl.sum())


def verify(a, b):
    """The idiomatic python: BFMatcher.knnMatch (a DMatch object per neighbour)."""
    (pa, da), (pb, db) = feats[a], feats[b]
    if da is None or db is None or len(da) < 2 or len(db) < 2:
        return 0
    best = {}
    for m in matcher.knnMatch(da, db, k=2):
        if len(m) < 2 or m[0].distance >= spec["ratio"] * m[1].distance:
            continue
        p = best.get(m[0].trainIdx)
        if p is None or m[0].distance < p[1]:
            best[m[0].trainIdx] = (m[0].queryIdx, m[0].distance)
    return ransac(pa, pb, [(q, t) for t, (q, _) in best.items()])


def verify_batch(a, b):
    """What the service does: cv2.batchDistance (the matcher's kernel) read as arrays."""
    (pa, da), (pb, db) = feats[a], feats[b]
    if da is None or db is None or len(da) < 2 or len(db) < 2:
        return 0
    dist, idx = cv2.batchDistance(da, db, cv2.CV_32F, normType=cv2.NORM_L2, K=2)
    best = {}
    for q in np.flatnonzero((dist[:, 0] < spec["ratio"] * dist[:, 1]) & (idx[:, 1] >= 0)):
        t = int(idx[q, 0])
        p = best.get(t)
        if p is None or dist[q, 0] < p[1]:
            best[t] = (int(q), dist[q, 0])
    return ransac(pa, pb, [(q, t) for t, (q, _) in best.items()])


out = {"threads": cv2.getNumThreads(), "extract_ms": extract_ms, "keypoints_p50": statistics.median(len(f[0]) for f in feats.values())}
for name, fn in (("", verify), ("_batch", verify_batch)):
    for kind in ("matching", "nonmatching"):
        ms = []
        inliers = []
        for _ in range(spec["reps"]):
            for a, b in spec[kind]:
                t = time.perf_counter()
                n = fn(a, b)
                ms.append((time.perf_counter() - t) * 1000)
                inliers.append(n)
        out[kind + name] = {"ms": ms, "inliers_p50": statistics.median(inliers)}
print(json.dumps(out))
