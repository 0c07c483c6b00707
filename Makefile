# Shortcuts for scripts/dev.py, which needs nothing but Python (see the README).
.PHONY: run test lint bench
run:
	python3 scripts/dev.py run
test:
	python3 scripts/dev.py test
lint:
	python3 scripts/dev.py lint
bench:
	python3 scripts/dev.py bench
