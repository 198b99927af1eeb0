"""Writes N OpenAI Batch input lines (chat completions, short prompts) to stdout."""
import json
import sys

n = int(sys.argv[1])
model = sys.argv[2] if len(sys.argv) > 2 else "gpt-4o-mini"
out = sys.stdout
for i in range(n):
    line = {
        "custom_id": f"request-{i}",
        "method": "POST",
        "url": "/v1/chat/completions",
        "body": {
            "model": model,
            "messages": [{"role": "user", "content": f"Say something about the number {i}."}],
            "max_tokens": 16,
        },
    }
    out.write(json.dumps(line, separators=(",", ":")))
    out.write("\n")
