# The two commands a new user needs: `make demo` and `make test`.
.PHONY: demo chat test lint bench clean

demo:  ## an offline voice conversation from a shipped WAV: transcript on screen, reply in out/reply.wav
	@scripts/setup.sh offline
	.venv/bin/voicekit chat --profile offline --input examples/audio/hello.wav --output out/reply.wav --record out/recording --overwrite

chat:  ## talk to the offline default through your microphone and speaker
	@scripts/setup.sh all
	.venv/bin/voicekit chat --profile offline

test:  ## install everything needed (system packages too, when root) and run the tests
	scripts/test.sh

lint:  ## ruff (lint and format) and mypy --strict, as CI runs them
	@scripts/setup.sh dev
	scripts/lint.sh

clean:
	rm -rf .venv out .pytest_cache
