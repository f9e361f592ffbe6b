"""Java pre- and post-processing steps of deepImageJ bundles, run inside the session's ImageJ.

A bundle may carry its processing as Java code: a jar (or a ``.class`` file, or a folder of them) with a
class implementing ``deepimagej.processing.PreProcessingInterface`` or ``PostProcessingInterface``. Its
descriptor names it ``{spec: "File.jar Class::method"}``. :func:`run_java_step` runs one such step the way
deepImageJ does: a new instance of the class gets the absolute paths of the config files
(``setConfigFiles``), then the map from tensor name to ``ImagePlus`` / ``ResultsTable`` (its stage's method),
then is asked for an error message (``error()``).

Class loading
-------------
deepij ships the two interfaces itself (``jars/src``, built into ``jars/build/deepij-processing.jar`` by
``scripts/setup.sh``, or here with ``javac`` on first need; see :func:`processing_jar`). They carry
deepImageJ's package, names and signatures, so a jar compiled against deepImageJ links against them.
Each bundle's code gets its own class loader below ImageJ's, kept per file and modification time
(:mod:`.loading`).

Threads
-------
A step never overlaps a macro: it holds ImageJ with :meth:`Session.exclusive
<deepij.imagej.session.Session.exclusive>` and runs on a thread of its own while the caller answers the
windows nobody can click (messages are answered, an error box or a dialog waiting for input fails the
step), as :mod:`deepij.imagej.macros` does for macros. Called from inside a running macro (a command
handler), it runs right there: that macro's watcher answers its windows.

Modules
-------
:mod:`.interfaces_jar` builds the interfaces jar; :mod:`.loading` loads a step's code with its own class
loader; :mod:`.call` calls the step and turns its failures into StepErrors; :mod:`.watch` runs it on its
own thread and answers its windows; :mod:`.running` is :func:`run_java_step` with its arguments.

Examples
--------
A bundle's post-processing jar gets the network's outputs by name and returns what it made, e.g.
``out = run_java_step(deepij.imagej(), "postprocessing.jar", None, "post", {"output": prediction})`` and
then ``session.to_dataframe(out["Results"])``; :func:`run_java_step` shows one compiled and run.
"""

from deepij.imagej.java_steps.interfaces_jar import (
    JAVA_SOURCES_DIR,
    PROCESSING_JAR,
    processing_jar,
    startup_classpath,
    write_jar,
)
from deepij.imagej.java_steps.loading import class_file_name, forget_loaded_steps
from deepij.imagej.java_steps.running import run_java_step

__all__ = ["JAVA_SOURCES_DIR", "PROCESSING_JAR", "class_file_name", "forget_loaded_steps", "processing_jar",
           "run_java_step", "startup_classpath", "write_jar"]
