"""The judges that stand on a pretrained backbone: the part classifier (`classify_*`) and the anomaly model
of good parts (`anomaly_*`), the backbone they share, their INT8 copies, and the evaluation of any judge or
chain of judges through the appliance's own code (`judge_*`). docs/judges.md.
"""
