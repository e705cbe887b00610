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
    "calib.thresholds.not_written": "nothing written to {out}",
    "calib.thresholds.saved": "thresholds saved in {out}{kept}",
}
