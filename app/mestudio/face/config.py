"""Configuration of face detection, landmarks, tracking and alignment."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class TrackerConfig:
    """Face tracker settings.

    Attributes:
        detector_model: explicit YuNet model path ("" = look it up; Haar when missing).
        landmark_model: explicit LBF model path ("" = look up 68-point, then 5-point).
        detect_every_s: re-run the detector at least this often (seconds); between
            detections the box follows the previous landmarks.
        detect_max_width: frames are downscaled to at most this width for detection (pixels).
        score_threshold: minimum detector confidence in [0, 1].
        min_face_px: smallest face box side considered, in frame pixels.
        lost_after_misses: consecutive failed fits before the face is declared lost.
        smoothing_min_cutoff_hz: One-Euro filter minimum cut-off (Hz); lower = smoother.
        smoothing_beta: One-Euro speed coefficient; higher = less lag on fast motion.
        smoothing_d_cutoff_hz: One-Euro derivative cut-off (Hz).
        align_size: side of the canonical aligned crop for spotting (pixels).
        align_eye_y: eye line height in the crop as a fraction of its side.
        align_eye_dist: inter-ocular distance as a fraction of the crop side.
        search_every_s: while no face is tracked, look for one at most this often
            (seconds; 0 = every frame).
        align_nose_weight: weight of the nose base against each eye (1) in the alignment
            similarity (0 = eyes only).
        fit_patch_size: side of the eye-normalised patch the LBF model is fitted in (pixels).
        fit_min_quality: below this correlation between the face patch and its appearance
            at the last detection, the fit is suspect and the detector runs at once (0..1).
        match_iou: a detection continues the tracked face when their boxes overlap by at
            least this intersection-over-union.
        reset_gap_s: a timestamp jump larger than this (or backwards) restarts tracking
            (seeking in review mode).
        box_eye_dx, box_eye_y: eye centres inside a Haar face box (box-only alignment),
            as fractions of its width from the centre and of its height from the top.
        faces: ``"primary"`` (one face: the largest) or ``"all"`` (every face,
            each with its own number, signal, spotter and events;
            :class:`~mestudio.face.multitrack.MultiFaceTracker`).
        max_faces: most faces analysed at once with ``faces="all"`` (largest first).
        keep_faces_s: a face missing for longer than this ends its track; when it comes
            back it is a new face with a new number (seconds).
        blink_hold: hold the eye points through blinks for the alignment (landmark
            models with a nose base): the eye corners follow the closing lid and would
            move the aligned crop; during a detected blink the pre-blink eye positions
            are carried by the nose base instead (:class:`~mestudio.face.align.BlinkHold`).
            A blink needs the eye points to rise towards the nose base (geometry) and,
            with ``blink_appearance``, the eyes to look closed: the contrast of a small
            patch around each eye (dark iris and lashes against skin and sclera) drops
            under the lid but not in a head tilt, e.g. while speaking. The hold ends
            when the contrast is back (eyes open). The reported landmarks still show
            the fit.
        blink_threshold: rise of the eye points towards the nose base that starts a blink,
            in inter-ocular distances above their median of the last second.
        blink_max_s: longest blink hold (s); a longer change is taken as the new geometry.
        blink_appearance: check the eye patches in the frame before holding (off: the
            geometric test alone, which also fires on changes of head pitch).
        blink_contrast_drop: fraction of its median of the last second the eye-patch
            contrast must lose for a blink (closed eyes: 0.2–0.35; a head tilt: < 0.06);
            the hold ends when less than three quarters of that loss remains.
    """

    detector_model: str = ""
    landmark_model: str = ""
    detect_every_s: float = 0.5
    detect_max_width: int = 320
    score_threshold: float = 0.6
    min_face_px: int = 40
    lost_after_misses: int = 2
    smoothing_min_cutoff_hz: float = 1.0
    smoothing_beta: float = 0.05
    smoothing_d_cutoff_hz: float = 1.0
    align_size: int = 128
    align_eye_y: float = 0.35
    align_eye_dist: float = 0.42
    search_every_s: float = 0.1
    align_nose_weight: float = 0.3
    fit_patch_size: int = 128
    fit_min_quality: float = 0.5
    match_iou: float = 0.3
    reset_gap_s: float = 1.0
    box_eye_dx: float = 0.17
    box_eye_y: float = 0.385
    faces: str = "primary"
    max_faces: int = 4
    keep_faces_s: float = 1.0
    blink_hold: bool = True
    blink_threshold: float = 0.03
    blink_max_s: float = 0.5
    blink_appearance: bool = True
    blink_contrast_drop: float = 0.12
