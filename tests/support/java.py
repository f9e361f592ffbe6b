"""Write and compile Java processing steps the way a bundle author does, into real jars.

A bundle author writes a class implementing deepImageJ's ``PreProcessingInterface`` or
``PostProcessingInterface``, compiles it with ``javac`` against ImageJ's ``ij.jar`` and deepImageJ's jar,
for Java 8 (what Fiji ran), and zips the classes into a jar. :func:`compile_steps` does that for Java
sources given here; :func:`pack_jar` zips a chosen set of the compiled classes.

The interfaces compiled against are, by default, deepij's own jar (``jars/build/deepij-processing.jar``).
``against="deepimagej"`` compiles against the copies below instead, written from deepImageJ's published
signatures independently of ``jars/src``, so a test shows that a jar compiled against deepImageJ links
against deepij's interfaces; ``against="deepimagej-2.0"`` uses the older post-processing interface
(``setConfigFile(String)``), as steps of 2021 bundles were written.

The steps (sources in :data:`STEP_SOURCES`, by qualified class name):

- ``org.example.seg.ThresholdMeasure`` (post): thresholds the ``output`` image at 0.5 into a mask (0/255)
  and measures its objects (area, centroid) with ImageJ's particle analyzer into a ResultsTable
  (``{"mask": ImagePlus, "objects": ResultsTable}``).
- ``ScaleFromConfig`` (pre; no package, as many bundles did): reads ``scale=<factor>`` from the ``.txt``
  config file handed over by ``setConfigFiles`` and multiplies ``input`` (as 32-bit) by it; the result's
  properties ``config_files`` (the paths it got, one a line) and ``instances`` (how many objects of the
  class exist in its class loader) let tests see what happened.
- ``org.example.check.CheckBitDepth`` (pre): ``error()`` says so unless ``input`` is a 32-bit image.
- ``org.example.seg.FailingPost`` (post): throws IllegalStateException from a helper method.
- ``org.example.ui.ShowsMessage`` (post): shows a message box, then returns its input.
- ``org.example.ui.AsksUser`` (pre): asks for a value in a GenericDialog.
- ``org.example.slow.Sleeps`` (pre): sleeps a minute.
- ``org.example.seg.UsesLibrary`` (pre): multiplies ``input`` by ``org.example.lib.Gain.of("input")``
  (5), a class of a library jar (``org.example.lib.Gain``) a bundle ships as an attachment.
- ``org.example.old.OldStylePost`` (post, compile with ``against="deepimagej-2.0"``): takes its config
  file through ``setConfigFile(String)`` and puts its path into the ``output`` image's ``config_file``.

Usage in a test (``tmp_path`` is pytest's fixture)::

    classes = compile_steps(tmp_path / "classes", ["ScaleFromConfig"])
    jar = pack_jar(classes, ["ScaleFromConfig"], tmp_path / "pre.jar")
"""

from __future__ import annotations

import os
import shutil
import subprocess
import zipfile
from collections.abc import Iterable, Sequence
from pathlib import Path

from deepij.imagej import java_steps, locate

# ------------------------------------------------------------------------------ deepImageJ's interfaces
#: deepImageJ 2.1+ interfaces, as its users compile against them (signatures from its documentation).
DEEPIMAGEJ_INTERFACES = {
    "deepimagej.processing.PreProcessingInterface": """\
package deepimagej.processing;
import java.util.ArrayList;
import java.util.HashMap;
public interface PreProcessingInterface {
    public String configFile = "";
    public HashMap<String, Object> deepimagejPreprocessing(HashMap<String, Object> map);
    public void setConfigFiles(ArrayList<String> files);
    public String error();
}
""",
    "deepimagej.processing.PostProcessingInterface": """\
package deepimagej.processing;
import java.util.ArrayList;
import java.util.HashMap;
public interface PostProcessingInterface {
    public String configFile = "";
    public HashMap<String, Object> deepimagejPostprocessing(HashMap<String, Object> map);
    public void setConfigFiles(ArrayList<String> files);
    public String error();
}
""",
}
#: deepImageJ 2.0's post-processing interface: one config file, as a String.
DEEPIMAGEJ_2_0_POST_INTERFACE = {
    "deepimagej.processing.PostProcessingInterface": """\
package deepimagej.processing;
import java.util.HashMap;
public interface PostProcessingInterface {
    public String configFile = "";
    public HashMap<String, Object> deepimagejPostprocessing(HashMap<String, Object> map);
    public void setConfigFile(String file);
    public String error();
}
""",
}

# ------------------------------------------------------------------------------------------ the steps
STEP_SOURCES = {
    "org.example.seg.ThresholdMeasure": """\
package org.example.seg;

import deepimagej.processing.PostProcessingInterface;
import ij.ImagePlus;
import ij.measure.Measurements;
import ij.measure.ResultsTable;
import ij.plugin.filter.ParticleAnalyzer;
import ij.process.ByteProcessor;
import ij.process.ImageProcessor;
import java.util.ArrayList;
import java.util.HashMap;

/** Probability map -> mask and a table of its objects. */
public class ThresholdMeasure implements PostProcessingInterface {
    private static final double THRESHOLD = 0.5;
    private String error = "";

    @Override
    public HashMap<String, Object> deepimagejPostprocessing(HashMap<String, Object> map) {
        Object output = map.get("output");
        if (!(output instanceof ImagePlus)) {
            error = "expected an image called 'output', found " + output;
            return map;
        }
        ImageProcessor probability = ((ImagePlus) output).getProcessor();
        ByteProcessor mask = new ByteProcessor(probability.getWidth(), probability.getHeight());
        for (int y = 0; y < mask.getHeight(); y++)
            for (int x = 0; x < mask.getWidth(); x++)
                if (probability.getPixelValue(x, y) > THRESHOLD) mask.set(x, y, 255);
        ImagePlus maskImage = new ImagePlus("mask", mask);
        mask.setThreshold(255, 255, ImageProcessor.NO_LUT_UPDATE);
        ResultsTable objects = new ResultsTable();
        ParticleAnalyzer analyzer = new ParticleAnalyzer(0, Measurements.AREA | Measurements.CENTROID,
                                                         objects, 0, Double.POSITIVE_INFINITY);
        analyzer.setHideOutputImage(true);
        if (!analyzer.analyze(maskImage)) error = "the particle analyzer failed";
        mask.resetThreshold();
        HashMap<String, Object> results = new HashMap<String, Object>();
        results.put("mask", maskImage);
        results.put("objects", objects);
        return results;
    }

    @Override
    public void setConfigFiles(ArrayList<String> files) {
    }

    @Override
    public String error() {
        return error;
    }
}
""",
    "ScaleFromConfig": """\
import deepimagej.processing.PreProcessingInterface;
import ij.ImagePlus;
import ij.process.ImageProcessor;
import java.io.BufferedReader;
import java.io.FileReader;
import java.io.IOException;
import java.util.ArrayList;
import java.util.HashMap;

public class ScaleFromConfig implements PreProcessingInterface {
    private static int instances = 0;
    private ArrayList<String> files = new ArrayList<String>();
    private String error = "";

    public ScaleFromConfig() {
        instances++;
    }

    public void setConfigFiles(ArrayList<String> files) {
        this.files = files;
    }

    public HashMap<String, Object> deepimagejPreprocessing(HashMap<String, Object> map) {
        double scale = 1;
        for (String file : files) {
            if (!file.endsWith(".txt")) continue;
            try {
                scale = readScale(file);
            } catch (IOException e) {
                error = "cannot read " + file + ": " + e.getMessage();
                return map;
            }
        }
        ImagePlus input = (ImagePlus) map.get("input");
        ImageProcessor pixels = input.getProcessor().convertToFloat().duplicate();
        pixels.multiply(scale);
        ImagePlus scaled = new ImagePlus("input", pixels);
        scaled.setProperty("config_files", String.join("\\n", files));
        scaled.setProperty("instances", String.valueOf(instances));
        map.put("input", scaled);
        return map;
    }

    private static double readScale(String file) throws IOException {
        BufferedReader reader = new BufferedReader(new FileReader(file));
        try {
            String line;
            while ((line = reader.readLine()) != null) {
                line = line.trim();
                if (line.startsWith("scale=")) return Double.parseDouble(line.substring(6));
            }
        } finally {
            reader.close();
        }
        throw new IOException("no 'scale=' line");
    }

    public String error() {
        return error;
    }
}
""",
    "org.example.check.CheckBitDepth": """\
package org.example.check;

import deepimagej.processing.PreProcessingInterface;
import ij.ImagePlus;
import java.util.ArrayList;
import java.util.HashMap;

public class CheckBitDepth implements PreProcessingInterface {
    private String error = "";

    public HashMap<String, Object> deepimagejPreprocessing(HashMap<String, Object> map) {
        ImagePlus input = (ImagePlus) map.get("input");
        if (input.getBitDepth() != 32)
            error = "the model needs a 32-bit image, found a " + input.getBitDepth() + "-bit image";
        return map;
    }

    public void setConfigFiles(ArrayList<String> files) {
    }

    public String error() {
        return error;
    }
}
""",
    "org.example.seg.FailingPost": """\
package org.example.seg;

import deepimagej.processing.PostProcessingInterface;
import java.util.ArrayList;
import java.util.HashMap;

public class FailingPost implements PostProcessingInterface {
    public HashMap<String, Object> deepimagejPostprocessing(HashMap<String, Object> map) {
        countObjects(map);
        return map;
    }

    private static int countObjects(HashMap<String, Object> map) {
        throw new IllegalStateException("no objects above the threshold in 'output'");
    }

    public void setConfigFiles(ArrayList<String> files) {
    }

    public String error() {
        return "";
    }
}
""",
    "org.example.ui.ShowsMessage": """\
package org.example.ui;

import deepimagej.processing.PostProcessingInterface;
import ij.IJ;
import java.util.ArrayList;
import java.util.HashMap;

public class ShowsMessage implements PostProcessingInterface {
    public HashMap<String, Object> deepimagejPostprocessing(HashMap<String, Object> map) {
        IJ.showMessage("Post-processing", "Objects counted: " + map.size());
        return map;
    }

    public void setConfigFiles(ArrayList<String> files) {
    }

    public String error() {
        return "";
    }
}
""",
    "org.example.ui.AsksUser": """\
package org.example.ui;

import deepimagej.processing.PreProcessingInterface;
import ij.gui.GenericDialog;
import java.util.ArrayList;
import java.util.HashMap;

public class AsksUser implements PreProcessingInterface {
    public HashMap<String, Object> deepimagejPreprocessing(HashMap<String, Object> map) {
        GenericDialog dialog = new GenericDialog("Normalization");
        dialog.addNumericField("Percentile", 99.8, 1);
        dialog.showDialog();
        return map;
    }

    public void setConfigFiles(ArrayList<String> files) {
    }

    public String error() {
        return "";
    }
}
""",
    "org.example.slow.Sleeps": """\
package org.example.slow;

import deepimagej.processing.PreProcessingInterface;
import java.util.ArrayList;
import java.util.HashMap;

public class Sleeps implements PreProcessingInterface {
    private String error = "";

    public HashMap<String, Object> deepimagejPreprocessing(HashMap<String, Object> map) {
        try {
            Thread.sleep(60000);
        } catch (InterruptedException e) {
            error = "interrupted";
        }
        return map;
    }

    public void setConfigFiles(ArrayList<String> files) {
    }

    public String error() {
        return error;
    }
}
""",
    "org.example.lib.Gain": """\
package org.example.lib;

/** A library class: shipped in a jar of its own, next to the step's jar. */
public final class Gain {
    private Gain() {
    }

    public static double of(String name) {
        return name.length();
    }
}
""",
    "org.example.seg.UsesLibrary": """\
package org.example.seg;

import deepimagej.processing.PreProcessingInterface;
import ij.ImagePlus;
import ij.process.ImageProcessor;
import java.util.ArrayList;
import java.util.HashMap;
import org.example.lib.Gain;

public class UsesLibrary implements PreProcessingInterface {
    public HashMap<String, Object> deepimagejPreprocessing(HashMap<String, Object> map) {
        ImageProcessor pixels = ((ImagePlus) map.get("input")).getProcessor().convertToFloat().duplicate();
        pixels.multiply(Gain.of("input"));
        map.put("input", new ImagePlus("input", pixels));
        return map;
    }

    public void setConfigFiles(ArrayList<String> files) {
    }

    public String error() {
        return "";
    }
}
""",
    "org.example.old.OldStylePost": """\
package org.example.old;

import deepimagej.processing.PostProcessingInterface;
import ij.ImagePlus;
import java.util.HashMap;

public class OldStylePost implements PostProcessingInterface {
    private String config = "(none)";

    public HashMap<String, Object> deepimagejPostprocessing(HashMap<String, Object> map) {
        ((ImagePlus) map.get("output")).setProperty("config_file", config);
        return map;
    }

    public void setConfigFile(String file) {
        config = file;
    }

    public String error() {
        return "";
    }
}
""",
}


def compile_steps(classes: Path, class_names: Iterable[str], *, against: str = "deepij",
                  extra_sources: dict[str, str] | None = None) -> Path:
    """Compile the steps named (keys of :data:`STEP_SOURCES`) into the folder ``classes``; return it.

    Parameters
    ----------
    classes : Path
        Output folder of the ``.class`` files (a class path root).
    class_names : iterable of str
        Qualified names of the steps to compile.
    against : {"deepij", "deepimagej", "deepimagej-2.0"}
        Which interfaces to compile against (see the module docstring). With ``"deepimagej"`` and
        ``"deepimagej-2.0"`` the interface classes are compiled into ``classes`` too: bundle authors often
        packed them into their jar.
    extra_sources : dict, optional
        More sources, by qualified class name.
    """
    sources = {name: STEP_SOURCES[name] for name in class_names}
    sources.update(extra_sources or {})
    classpath = [locate.find_ij_jar()]
    if against == "deepij":
        classpath.append(java_steps.processing_jar())
    elif against == "deepimagej":
        sources.update(DEEPIMAGEJ_INTERFACES)
    elif against == "deepimagej-2.0":
        sources.update(DEEPIMAGEJ_2_0_POST_INTERFACE)
    else:
        raise ValueError(f"against: expected 'deepij', 'deepimagej' or 'deepimagej-2.0', found {against!r}")
    source_dir = classes.parent / f"{classes.name}-src"
    files = []
    for name, text in sources.items():
        path = source_dir / (name.replace(".", "/") + ".java")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        files.append(str(path))
    classes.mkdir(parents=True, exist_ok=True)
    javac = shutil.which("javac") or "javac"
    done = subprocess.run(
        [javac, "-nowarn", "--release", "8", "-cp", os.pathsep.join(map(str, classpath)), "-d", str(classes),
         *files],
        capture_output=True, text=True, timeout=300,
    )
    if done.returncode != 0:
        raise RuntimeError(f"javac failed:\n{done.stderr}")
    return classes


def pack_jar(classes: Path, class_names: Sequence[str], target: Path, *,
             with_interfaces: bool = False) -> Path:
    """Zip the named classes (and their inner classes) from ``classes`` into the jar ``target``.

    ``with_interfaces`` packs the ``deepimagej/processing`` classes found in ``classes`` too.
    """
    entries = []
    for name in class_names:
        relative = name.replace(".", "/")
        folder = (classes / relative).parent
        stem = relative.rsplit("/", 1)[-1]
        entries += [p for p in folder.glob(f"{stem}.class")] + sorted(folder.glob(f"{stem}$*.class"))
    if with_interfaces:
        entries += sorted((classes / "deepimagej" / "processing").glob("*.class"))
    if len(entries) < len(class_names):
        raise FileNotFoundError(f"not all of {class_names} were compiled into {classes}")
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as archive:
        # what Java 8's jar tool wrote, as in bundles of the deepImageJ 2.x era
        archive.writestr("META-INF/MANIFEST.MF",
                         "Manifest-Version: 1.0\r\nCreated-By: 1.8.0_281 (Oracle)\r\n\r\n")
        for path in entries:
            archive.write(path, path.relative_to(classes).as_posix())
    return target
