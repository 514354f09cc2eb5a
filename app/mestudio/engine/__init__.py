"""The engine: what turns frames into events, emotions and pictures, without Qt.

* :mod:`~mestudio.engine.pipeline` — ``Pipeline``: tracker → ROI signal → online spotter →
  recogniser, one ``FrameResult`` per frame; ``Pipeline.from_config`` is the one builder.
* :mod:`~mestudio.engine.recognition` — ``Recognizer``: crop buffers and the worker thread
  that names spotted events (micro-expression model, expression model).
* :mod:`~mestudio.engine.live` — ``LiveSession``: a source played in real time through the
  pipeline, for the live window, the kiosk and the benchmarks.
* :mod:`~mestudio.engine.analysis` — ``analyze_video``: one whole recording through the
  pipeline (read-ahead threads, ``frames.csv``, stop), for ``analyze``, review and
  ``spot-eval``.
* :mod:`~mestudio.engine.overlays` and :mod:`~mestudio.engine.event_details` — the pictures
  made from the pipeline's numbers (flow, strain, Grad-CAM, an event's crops and inputs).

It sits above the stages (capture, face, flow, spotting, preprocess, nets, inference) and
below the front ends (gui, commands, bench). Nothing is imported here: each module is loaded
when used.
"""
