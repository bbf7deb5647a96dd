"""OpenCV dnn peer of the encoder benchmark: same model file, same images, same threads.

usage: /usr/bin/python3 bench/encoder/opencv-dnn.bench.py MODEL LIST_FILE [THREADS] [BATCH]
Prints one JSON line: images/s for decode+resize+inference (batched) and inference only.
"""
import json
import sys
import time

import cv2
import numpy as np

model, list_file = sys.argv[1], sys.argv[2]
threads = int(sys.argv[3]) if len(sys.argv) > 3 else 2
batch = int(sys.argv[4]) if len(sys.argv) > 4 else 16
cv2.setNumThreads(threads)
paths = [p for p in open(list_file).read().splitlines() if p]
net = cv2.dnn.readNetFromONNX(model)
mean = np.array([0.485, 0.456, 0.406]) * 255
std = np.array([0.229, 0.224, 0.225])


def blob(images):
    # Same preprocessing as the encoder: centre crop (RESIZE_MODE default) to 224, RGB, ImageNet mean/std.
    b = cv2.dnn.blobFromImages(images, 1.0 / 255, (224, 224), (0, 0, 0), swapRB=True, crop=True)
    b -= (mean / 255).reshape(1, 3, 1, 1)
    b /= std.reshape(1, 3, 1, 1)
    return b.astype(np.float32)


# warm-up
net.setInput(blob([cv2.imread(paths[0])]))
net.forward()

t0 = time.perf_counter()
c0 = time.process_time()
blobs = []
for i in range(0, len(paths), batch):
    imgs = [cv2.imread(p) for p in paths[i:i + batch]]
    b = blob(imgs)
    blobs.append(b)
    net.setInput(b)
    out = net.forward()
full = len(paths) / (time.perf_counter() - t0)
full_cpu = (time.process_time() - c0) * 1000 / len(paths)

t0 = time.perf_counter()
c0 = time.process_time()
for b in blobs:
    net.setInput(b)
    net.forward()
infer = len(paths) / (time.perf_counter() - t0)
infer_cpu = (time.process_time() - c0) * 1000 / len(paths)

t0 = time.perf_counter()
for p in paths:
    net.setInput(blob([cv2.imread(p)]))
    net.forward()
single = len(paths) / (time.perf_counter() - t0)

print(json.dumps({"opencv": cv2.__version__, "threads": threads, "batch": batch, "images": len(paths),
                  "full_img_s": round(full, 1), "full_cpu_ms_per_img": round(full_cpu, 1),
                  "inference_only_img_s": round(infer, 1), "inference_cpu_ms_per_img": round(infer_cpu, 1), "batch1_full_img_s": round(single, 1),
                  "out_shape": list(out.shape)}))
