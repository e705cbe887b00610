"""The English of `lineside calibrate`'s detailed output (views, RMS, residuals, ROI, reference, thresholds),
joined into `edge.i18n.ENGLISH`; kept apart so the catalog module stays small (docs/i18n.md)."""

from __future__ import annotations

CALIBRATION: dict[str, str] = {
    # where a calibration file was written (lineside/commands/calibrate.py)
    "calib.where_new": "{path} (new file)",
    "calib.where_kept": "{path} (previous kept as {name}.prev)",
    "calib.kept": " (previous kept as {name}.prev)",
    # `lineside calibrate intrinsics`
    "calib.intrinsics.head": (
        "intrinsics from {used} of {total} images in {folder} ({board}, {width}x{height}):"
    ),
    "calib.intrinsics.view": "{name:<24} error {error:.3f} px   sharpness {sharpness:.0f}",
    "calib.intrinsics.view_unused": "{name:<24} not used: {why}",
    "calib.intrinsics.board_not_found": "board not found",
    "calib.intrinsics.blurred": "blurred (sharpness {sharpness:.0f} < {limit:g})",
    "calib.intrinsics.rms": (
        "RMS reprojection error {rms:.3f} px; views tilted up to {spread:.0f} degrees apart"
    ),
    "calib.intrinsics.matrix": "fx {fx:.1f}  fy {fy:.1f}  cx {cx:.1f}  cy {cy:.1f} px",
    "calib.intrinsics.distortion": "distortion {coefficients}",
    "calib.intrinsics.stale": (
        "note: {sections} in {out} were measured with other intrinsics; the runtime refuses them until you"
        " re-run: {commands}"
    ),
    "calib.both": "{first} and {second}",
    # `lineside calibrate intrinsics` refusing a set of views (calibration/intrinsics.py, exit 2)
    "calib.refuse.board_nowhere": (
        "{board} not found in any of the {images} images: wrong board spec or size?"
    ),
    "calib.refuse.too_few": "only {usable} usable views of {board} (need {need}){blurred}{missing}",
    "calib.refuse.blurred": "; blurred: {names}",
    "calib.refuse.missing": "; board not found in: {names}",
    "calib.refuse.names_more": "{names} and {more} more",
    "calib.refuse.no_convergence": "calibration of the {views} views did not converge: retake them",
    "calib.refuse.tilted_alike": (
        "the {views} views are all tilted alike (board normals within {spread:.1f} degrees, need {need:g}):"
        " retake with the board tilted 20-40 degrees in different directions"
    ),
    "calib.refuse.no_usable_frame": "the distortion found maps no usable frame: retake the views",
    # the one-line input errors (exit 2) of every step: the file, field or value named; OpenCV's, pydantic's,
    # the OS's and Python's own words inserted as they said them (calibration/errors.py)
    "calib.input.target": "target {spec}: expected {forms}",
    "calib.input.target_problem": "target {spec}: {problem}; expected {forms}",
    "calib.input.spec_forms": (
        "chessboard:COLSxROWS:SQUAREmm (inner corners), charuco:SQUARESXxSQUARESY:SQUAREmm:MARKERmm:DICT"
        " or aruco:ID:SIZEmm[:DICT]"
    ),
    "calib.input.min_chessboard": "a chessboard needs at least 3x3 inner corners",
    "calib.input.min_charuco": "a ChArUco board needs at least 3x3 squares",
    "calib.input.not_grid": "{text} is not COLSxROWS",
    "calib.input.not_positive_mm": "size {text} must be a positive number of mm",
    "calib.input.unknown_dictionary": "unknown ArUco dictionary {name} (e.g. DICT_4X4_50, DICT_5X5_100)",
    "calib.input.not_in_dictionary": "id {id} is not in {dictionary}",
    "calib.input.marker_too_big": "marker {marker:g}mm must be smaller than the square {square:g}mm",
    "calib.input.few_markers": "{dictionary} has too few markers for {x}x{y} squares",
    "calib.input.marker_intrinsics": (
        "{spec}: one marker is too few points for intrinsics; use a chessboard or charuco"
    ),
    "calib.input.no_image": "{path}: no such image file",
    "calib.input.unreadable_image": "{path}: not a readable image",
    "calib.input.no_folder": "{path}: no such folder",
    "calib.input.no_images": "{path}: no images ({suffixes})",
    "calib.input.no_images_given": "no images given",
    "calib.input.folder_empty": "{path}: no images",
    "calib.input.other_size": "{path}: {width}x{height}, the others are {w0}x{h0}",
    "calib.input.station_size": "{path}: {width}x{height}, but the station's frames are {cw}x{ch}",
    "calib.input.no_calibration": "{path}: calibration file missing",
    "calib.input.opencv_failed": "calibration failed: {error}",
    "calib.input.opencv": "OpenCV: {error}",
    "calib.input.os_missing": "{path}: {why}",
    "calib.input.os_error": "{path}: {why}",
    "calib.input.os_unnamed": "{why}",
    "calib.input.target_not_found": (
        "{origin}: {target} not found (wrong spec or size, or not wholly in view?)"
    ),
    "calib.input.degenerate_target": "{origin}: the target's corners give no plane (degenerate view)",
    "calib.input.horizon": "{origin}: the plane is tilted so far that its horizon is in view",
    "calib.input.no_pairs_file": "{path}: no such pairs file",
    "calib.input.unreadable_pairs": "{path}: unreadable pairs file ({error})",
    "calib.input.pairs_not_numbers": "{path}:{line}: expected numbers px,py,rx,ry, got {text}",
    "calib.input.pairs_not_four": "{path}:{line}: expected 4 finite numbers px,py,rx,ry, got {text}",
    "calib.input.few_pairs": "{origin}: {pairs} point pairs, need at least {need}",
    "calib.input.collinear": (
        "{origin}: the {which} points lie (nearly) on one line; spread them over the working area"
    ),
    "calib.input.pixel_points": "pixel",
    "calib.input.robot_points": "robot",
    "calib.input.no_homography": "{origin}: the pairs give no homography (degenerate points)",
    "calib.input.pair_outside": "{path}: pair {number} is outside the {width}x{height} frame",
    "calib.input.need_frame": "{out} does not exist yet: give the frame size with --frame WxH",
    "calib.input.bad_frame": "--frame {text}: expected WIDTHxHEIGHT, e.g. 1280x960",
    "calib.input.frames_count": "--frames: must be at least 1, got {count}",
    "calib.input.not_png": "{path}: output image must be a .png file",
    "calib.input.png_encoding": "{path}: OpenCV could not encode the image as PNG",
    "calib.input.not_numbers": "{option} {text}: expected numbers separated by commas",
    "calib.input.roi_invalid": "{option}: {error}",
    "calib.input.rect_count": "--rect {text}: expected x,y,w,h (4 numbers), got {count}",
    "calib.input.polygon_count": "--polygon {text}: expected x1,y1,x2,y2,... (3 or more corners)",
    "calib.input.give_frames": "give --image or --config",
    "calib.input.roi_outside": "{name} reaches outside the {width}x{height} frame",
    "calib.input.no_reference": (
        "{path}: no reference frame stored: run lineside calibrate check --set-reference"
    ),
    "calib.input.limit_name": "--limit {pair}: expected NAME=VALUE with NAME one of {known}",
    "calib.input.limit_value": "--limit {where}: {error}",
    "calib.input.reference_size": (
        "{path}: made for {width}x{height} frames, this one is {cw}x{ch}: start a new calibration file"
    ),
    "calib.input.reference_features": (
        "reference frame has only {found} features (need {need}): put the part or fixture in view, lit and"
        " in focus"
    ),
    "calib.input.reference_encoding": "reference frame: OpenCV could not encode it as PNG",
    "calib.input.no_frames": "no frames to check",
    "calib.input.target_escape": "--target-escape {value}: must be between 0 and 1",
    # `lineside calibrate scale`
    "calib.scale.line": "scale {mm_per_px:.5f} mm/px on the working plane ({method}; {where})",
    "calib.scale.undistorted": "undistorted first",
    "calib.scale.raw": "raw image: no intrinsics in the file",
    "calib.scale.tilt": "plane tilt {tilt:.1f} degrees; the scale varies {variation:.2f}% across the target",
    "calib.scale.tilt_approximate": (
        "plane tilt {tilt:.1f} degrees (approximate without intrinsics); the scale varies {variation:.2f}%"
        " across the target"
    ),
    "calib.scale.homography": (
        "tilted plane: saved a pixel->plane homography for positions; sizes use the frame centre's scale"
    ),
    # `lineside calibrate robot`
    "calib.robot.head": "robot plane from {pairs} point pairs (pixel -> robot mm):",
    "calib.robot.pair": (
        "{number:>3}  ({px:8.1f}, {py:8.1f}) px -> ({rx:8.1f}, {ry:8.1f}) mm   residual {residual:.3f} mm"
    ),
    "calib.robot.rms": "RMS residual {rms:.3f} mm, largest {largest:.3f} mm",
    # `lineside calibrate roi`, `show`, `check --set-reference`, `thresholds`
    "calib.roi.saved": "ROI {roi} saved in {out}{kept}",
    "calib.roi.whole": "the whole frame",
    "calib.roi.rect": "rect at ({x:g},{y:g}) {w:g}x{h:g} px{mm}",
    "calib.roi.polygon": "polygon of {corners} corners, bounding box at ({x:g},{y:g}) {w:g}x{h:g} px{mm}",
    "calib.roi.mm": " = {w:.1f}x{h:.1f} mm",
    "calib.roi.drawn": "drawn on {image}: {png}",
    "calib.roi.drawn_undistorted": "drawn on {image} (undistorted with the station's intrinsics): {png}",
    "calib.show.line": "{origin}: {count} detection(s) by {model} {version}, drawn with {calibration}",
    "calib.saved_file": "saved {path}",
    "calib.reference.line": (
        "reference from {origin}: focus {focus:.1f}, mean grey {mean:.1f}, {features} features"
    ),
    "calib.reference.saved": "saved {image} and the baseline in {calibration}",
    "calib.thresholds.head": "model {model}, {good} good and {bad} defective samples:",
    "calib.thresholds.class": "  {cls:<16} reject at confidence >= {threshold:.4f}  ({evidence})",
    "calib.thresholds.evidence": "catches {caught} defective; highest good {score:.4f} {name}",
    "calib.thresholds.escape": "  escape  {rate:6.1%}  ({count} of {of} defective accepted){names}",
    "calib.thresholds.overkill": "  overkill {rate:5.1%}  ({count} of {of} good rejected){names}",
    "calib.thresholds.names": ": {names}",
    "calib.thresholds.names_more": ": {names}, ... {more} more",
    "calib.thresholds.unreachable": (
        "  target escape {target:.1%} is NOT reachable on these samples even at the floor {floor}: the model"
        " misses the defective parts listed"
    ),
    "calib.thresholds.ask": "Write thresholds to {out}?",
    "calib.thresholds.choices": "[y/N]",
    "calib.thresholds.not_written": "nothing written to {out}",
    "calib.thresholds.saved": "thresholds saved in {out}{kept}",
}
