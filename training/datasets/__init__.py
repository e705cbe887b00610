"""YOLO-layout datasets: checking, leak-free splitting, and importing from Pascal VOC and lineside records."""
