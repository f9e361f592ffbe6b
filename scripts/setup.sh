#!/usr/bin/env bash
# Installs everything deepij needs on a fresh Debian 12 machine: system packages (a JDK with AWT, ImageJ 1.x
# from libij-java, Xvfb) and a virtual environment at .venv with deepij and its frameworks.
# Re-running is cheap: each step is skipped when already done.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '[setup] %s\n' "$*" >&2; }

# --- system packages -------------------------------------------------------------------------------------
missing=()
java_home=""
if command -v javac >/dev/null 2>&1; then
    java_home=$(dirname "$(dirname "$(readlink -f "$(command -v javac)")")")
fi
# javac builds the ImageJ shim and plugin (jars/); libawt_xawt is what a non-headless JVM under Xvfb needs.
if [ -z "$java_home" ] || [ -z "$(find "$java_home" -name libawt_xawt.so -print -quit 2>/dev/null)" ]; then
    missing+=(openjdk-17-jdk)
fi
[ -f /usr/share/java/ij.jar ] || missing+=(libij-java)
command -v Xvfb >/dev/null 2>&1 || missing+=(xvfb)
if [ ${#missing[@]} -gt 0 ]; then
    sudo=""
    if [ "$(id -u)" -ne 0 ]; then
        if command -v sudo >/dev/null 2>&1; then sudo="sudo"; else
            log "need root to install: ${missing[*]} (run: apt-get install ${missing[*]})"; exit 1
        fi
    fi
    log "installing system packages: ${missing[*]}"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# --- deepImageJ's processing interfaces (jars/src -> jars/build/deepij-processing.jar) --------------------
# Rebuilt only when the sources change; deepij.imagej.java_steps reads the same stamp (sha256 of the sources
# in byte order of their paths) and builds the jar itself when it is missing.
java_sources=$(find jars/src -name '*.java' | LC_ALL=C sort)
java_hash=$(cat $java_sources | sha256sum | cut -d' ' -f1)
java_jar=jars/build/deepij-processing.jar
if [ ! -f "$java_jar" ] || [ "$(cat "$java_jar.sha256" 2>/dev/null)" != "$java_hash" ]; then
    log "compiling jars/src into $java_jar"
    rm -rf jars/build/classes && mkdir -p jars/build/classes
    # --release 8: Fiji installations still run Java 8
    javac -nowarn --release 8 -cp /usr/share/java/ij.jar -d jars/build/classes $java_sources
    jar --create --file "$java_jar.partial" -C jars/build/classes .
    mv "$java_jar.partial" "$java_jar"
    echo "$java_hash" > "$java_jar.sha256"
fi

# --- deepij's ImageJ plugin: the same classes plus plugins.config -> jars/build/deepij_.jar -------------------
# `deepij plugin install DIR` copies it into a Fiji/ImageJ with the record of which Python runs deepij
# (deepij.frontdoors.plugin_install writes the same plugins.config; a test keeps the two equal).
plugin_jar=jars/build/deepij_.jar
if [ ! -f "$plugin_jar" ] || [ "$(cat "$plugin_jar.sha256" 2>/dev/null)" != "$java_hash" ]; then
    log "packing $plugin_jar"
    config_dir=$(mktemp -d)
    cat > "$config_dir/plugins.config" <<'CONFIG'
# deepij: deepImageJ bundles and zoo models (written by `deepij plugin install`)
Plugins>deepij, "DeepImageJ Run", deepij.plugin.RunCommand("DeepImageJ Run")
Plugins>deepij, "DeepImageJ Validate", deepij.plugin.ValidateCommand("DeepImageJ Validate")
Plugins>deepij, "Install Model", deepij.plugin.InstallCommand("Install Model")
Plugins>deepij, "Test Model", deepij.plugin.TestCommand("Test Model")
Plugins>deepij, "DeepImageJ StarDist", deepij.plugin.InstanceCommand("DeepImageJ StarDist")
Plugins>deepij, "DeepImageJ Cellpose", deepij.plugin.InstanceCommand("DeepImageJ Cellpose")
CONFIG
    cp "$java_jar" "$plugin_jar.partial"
    jar --update --file "$plugin_jar.partial" -C "$config_dir" plugins.config
    rm -rf "$config_dir"
    mv "$plugin_jar.partial" "$plugin_jar"
    echo "$java_hash" > "$plugin_jar.sha256"
fi

# --- Python environment ----------------------------------------------------------------------------------
py=${PYTHON:-python3}
stamp=.venv/.deepij-setup
want=$(cat pyproject.toml scripts/setup.sh | sha256sum | cut -d' ' -f1)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
    exit 0
fi
[ -x .venv/bin/python ] || { log "creating .venv"; "$py" -m venv .venv; }
pip=(.venv/bin/python -m pip install -q --disable-pip-version-check)
# torch==2.13.0 is a CPU wheel already on the project's machines; any other spec pulls GBs of CUDA packages.
if ! .venv/bin/python -c "import torch" >/dev/null 2>&1; then
    log "installing torch==2.13.0"
    "${pip[@]}" torch==2.13.0
fi
log "installing deepij and its dependencies into .venv"
"${pip[@]}" -e ".[torch,tensorflow,onnx,openvino,plot,luts,dask,stardist,cellpose,test]"
# cellpose without its torchvision (which would replace torch 2.13.0): cellpose.dynamics needs none up to 4.1.1
"${pip[@]}" --no-deps "cellpose==4.1.1"
echo "$want" > "$stamp"
log "done"
