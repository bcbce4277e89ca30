# The README's two set-up commands: `make demo` and `make test`. Both bootstrap the venv,
# the pinned wheels and the interface build first (idempotent, quick the second time).
SHELL := /bin/bash
VENV := .venv
ACTIVATE := . $(VENV)/bin/activate
# DDS discovery must never leave this machine (Kilted ignores ROS_LOCALHOST_ONLY).
export ROS_AUTOMATIC_DISCOVERY_RANGE := LOCALHOST
export AMENT_PREFIX_PATH := $(CURDIR)/$(VENV)

.PHONY: demo test bootstrap benchmark clean

bootstrap:
	@scripts/bootstrap.sh

# Replays the embedded demo episode through the node on the embedded default model.
demo: bootstrap
	@$(ACTIVATE) && ROS_DOMAIN_ID=$$(( $$$$ % 100 + 1 )) python -m mask2iv_ros.demo

# Each pytest run picks its own ROS_DOMAIN_ID (test/conftest.py).
test: bootstrap
	@$(ACTIVATE) && python -m pytest test -q

benchmark: bootstrap
	@# gpu_paper_scale needs CUDA (its CPU tiny mode stands in); bench_transport's full sweep
	@# takes minutes, --quick prints the same table on fewer rollouts.
	@$(ACTIVATE) && for b in benchmarks/*.py; do echo "== $$b"; args=; \
	  case $$b in */gpu_paper_scale.py) python -c "import torch,sys; sys.exit(0 if torch.cuda.is_available() else 1)" || args="--device cpu --tiny --quick";; \
	  */bench_transport.py) args=--quick;; esac; python $$b $$args || exit 1; done

clean:
	rm -rf .ros $(VENV) .pytest_cache
