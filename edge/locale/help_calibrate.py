"""The English of `lineside calibrate`'s --help texts (every step), joined into `edge.i18n.ENGLISH` through
edge/locale/help.py; kept apart so each catalog module stays small (docs/i18n.md)."""

from __future__ import annotations

CALIBRATE: dict[str, str] = {
    "help.calibrate": "set up and check a station: lens, mm scale, ROI, checks, thresholds, robot plane",
    "help.calibrate.about": "Set up and check a station's camera; each step updates a calibration file.",
    "help.calibrate.examples": """steps, in the usual order:
  intrinsics   lens model from 8+ views of a board (the runtime then undistorts every frame)
  scale        mm per pixel on the working plane, from one image of a target lying on it
  roi, show, check, thresholds, robot
each step updates its section of one calibration file; see `lineside calibrate STEP --help`.
example:
  lineside calibrate intrinsics --images views/ --board chessboard:9x6:10mm --out station.json
  lineside calibrate scale --image plate.png --target chessboard:9x6:10mm --out station.json
exit status: 0 saved, 1 refused (error over its limit), 2 bad input.
""",
    # options the steps share
    "help.calibrate.out": "calibration file to update (created if absent)",
    "help.calibrate.force": "save even when the RMS is over --max-rms",
    "help.calibrate.calibration": "the station's calibration file",
    # intrinsics
    "help.calibrate.intrinsics": "compute the lens model from views of a board",
    "help.calibrate.intrinsics.images": "folder of board views (png, jpg, bmp, tif)",
    "help.calibrate.intrinsics.board": "board spec, e.g. chessboard:9x6:10mm",
    "help.calibrate.intrinsics.max_rms": "refuse above (default 1.0 px)",
    "help.calibrate.intrinsics.min_sharpness": (
        "drop views below this sharpness (default {sharpness:g}; each view's is printed)"
    ),
    "help.calibrate.intrinsics.k3": "also fit k3 (wide-angle lenses; needs many views)",
    "help.calibrate.intrinsics.examples": """examples:
  lineside calibrate intrinsics --images views/ --board chessboard:9x6:10mm --out station.json
  lineside calibrate intrinsics --images views/ --board charuco:7x5:30mm:22mm:DICT_5X5_100 --out station.json
Boards: chessboard:COLSxROWS:SQUAREmm counts INNER corners (a board of 10x7 squares is 9x6);
charuco:SQUARESXxSQUARESY:SQUAREmm:MARKERmm:DICT counts squares. Take {min_views}-20 sharp views, the
board tilted 20-40 degrees in different directions and reaching the frame's corners and edges.
Blurred views and views without the whole board are dropped and named; the set is refused when
fewer than {min_views} remain or all are tilted alike. Over --max-rms nothing is saved unless --force.
""",
    # scale
    "help.calibrate.scale": "measure mm per pixel on the working plane from a target",
    "help.calibrate.scale.image": "a frame with the target on the working plane",
    "help.calibrate.scale.target": "chessboard:COLSxROWS:SQUAREmm or aruco:ID:SIZEmm[:DICT]",
    "help.calibrate.scale.examples": """examples:
  lineside calibrate scale --image plate.png --target chessboard:9x6:10mm --out station.json
  lineside calibrate scale --image plate.png --target aruco:7:50mm --out station.json
  lineside calibrate scale --image plate.png --target aruco:7:50mm:DICT_5X5_100 --out station.json
Lay the target flat where the parts lie. If station.json has intrinsics the image is undistorted first,
as the runtime does. When the scale varies by more than {tilt_pct:g}% across the target (a
tilted plane), a pixel->plane homography is saved too, so positions in mm are right across the frame.
""",
    # robot
    "help.calibrate.robot": "fit pixel -> robot-plane mm from point pairs",
    "help.calibrate.robot.pairs": "CSV file: px,py,rx,ry per line, 4 or more",
    "help.calibrate.robot.frame": "frame size, needed when --out does not exist yet",
    "help.calibrate.robot.max_rms": "refuse above (default 2 mm)",
    "help.calibrate.robot.examples": """examples:
  lineside calibrate robot --pairs pairs.csv --out station.json
  lineside calibrate robot --pairs pairs.csv --out new.json --frame 1280x960
pairs.csv has one point per line: px,py,rx,ry (pixel in the frames the runtime sees, which are
undistorted when station.json has intrinsics; robot-plane position in mm), 4 or more points spread
over the working area, not on one line; a header line and '#' comments are allowed.
""",
    # roi
    "help.calibrate.roi": "store the region of interest and draw it on a frame",
    "help.calibrate.roi.image": "a frame from this station's camera",
    "help.calibrate.roi.rect": "rectangle, frame pixels, top-left origin",
    "help.calibrate.roi.polygon": "corners in order, 3 or more",
    "help.calibrate.roi.png": "picture of the ROI (default: <out>.roi.png)",
    "help.calibrate.roi.examples": """examples:
  lineside calibrate roi --image frame.png --rect 40,30,560,420 --out station.json
  lineside calibrate roi --image frame.png --polygon 100,50,540,50,600,430,40,430       --out station.json \
--png roi.png
The ROI is stored in station.json (previous kept as station.json.prev); the PNG shows it drawn
(default: station.roi.png next to station.json). Only defects centred inside it can reject a part.
""",
    # show
    "help.calibrate.show": "draw the ROI, scale bar and detections on a frame",
    "help.calibrate.show.image": "a saved frame",
    "help.calibrate.show.config": "station config: one frame from its source",
    "help.calibrate.show.model": "model folder (model.onnx + card.json)",
    "help.calibrate.show.png": "where to write the picture",
    "help.calibrate.show.examples": """examples:
  lineside calibrate show --calibration station.json --image frame.png --png view.png
  lineside calibrate show --calibration station.json --config line.yaml --model models/pcb/2.0 --png view.png
Draws the ROI, a mm scale bar (if the station has a scale) and the model's detections (red: rejects,
orange: below its threshold, grey: outside the ROI). Model: --model, else the config's default recipe,
else the demo model.
""",
    # check
    "help.calibrate.check": "compare focus, exposure and pose with the reference",
    "help.calibrate.check.image": "saved frame(s) to check",
    "help.calibrate.check.config": "station config: grab frames from its source",
    "help.calibrate.check.frames": "frames to grab with --config",
    "help.calibrate.check.set_reference": "store the (first) frame as reference",
    "help.calibrate.check.limit": "override a limit (repeatable)",
    "help.calibrate.check.examples": """examples:
  lineside calibrate check --calibration station.json --set-reference --image good_view.png
  lineside calibrate check --calibration station.json --image now.png
  lineside calibrate check --calibration station.json --config line.yaml --frames 5
  lineside calibrate check --calibration station.json --image now.png --limit shift_fail_px=4
Compares focus, exposure and pose with the stored reference frame. --set-reference stores one frame
(and any --limit values) as the baseline. Limits (defaults, or as stored with the reference):
{limits}
exit status: 0 PASS or WARN, 1 FAIL, 2 bad input.
""",
    # thresholds
    "help.calibrate.thresholds": "propose per-class thresholds from golden samples",
    "help.calibrate.thresholds.good": "folder of good parts from this station",
    "help.calibrate.thresholds.bad": "folder of defective parts from this station",
    "help.calibrate.thresholds.out": "calibration file to update",
    "help.calibrate.thresholds.model": "model folder (default: the demo model)",
    "help.calibrate.thresholds.target_escape": "escape rate allowed (default 0)",
    "help.calibrate.thresholds.yes": "write without asking",
    "help.calibrate.thresholds.examples": """examples:
  lineside calibrate thresholds --good samples/good --bad samples/bad --out station.json
  lineside calibrate thresholds --good g/ --bad b/ --out station.json --model models/pcb/2.0 --yes
Runs the model on this station's golden samples, proposes per-class reject confidences meeting the
target escape rate at the lowest overkill, and writes them after you confirm (--yes: without asking).
exit status: 0 written, 1 not confirmed (nothing written), 2 bad input.
""",
}
