"""What a checkpoint is: its layout (:mod:`.layout`), how it becomes visible (:mod:`.publish`, :mod:`.saver`,
:mod:`.disk`), how it is checked before a resume (:mod:`.verify`, :mod:`.run_folder`), its formats (:mod:`.dcp`,
:mod:`.deepspeed`, the plain state files of :mod:`.state_files`) and its export (:mod:`.hf_export`)."""
