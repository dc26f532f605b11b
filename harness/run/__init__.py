"""Running a suite's trials with Ray Tune: the driver (``runner``), the trainable that runs on
each worker (``trainable``), and the callbacks that record (``recorder``) and print (``progress``)."""
