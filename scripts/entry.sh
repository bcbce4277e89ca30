# Sourced by the GPU training scripts: machines lent for minutes have no installed package.
# entry MODULE FUNCTION ARGS...: run a console entry point (setup.py's console_scripts) with $PY.
entry() {
  local module=$1 function=$2
  shift 2
  "$PY" -c "import sys; from $module import $function as f; sys.argv[0] = '$function'; sys.exit(f())" "$@"
}
