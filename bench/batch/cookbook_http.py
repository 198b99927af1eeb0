"""Runs OpenAI's cookbook api_request_parallel_processor.py, unmodified, against a plain-HTTP URL.

The script only recognises `https://` request URLs (its endpoint check returns None for
`http://`), and the benchmark's mock speaks plain HTTP on loopback. This wrapper loads the
script as a module, lets that one check accept `http://` too, and calls its entry point with
the arguments its command line takes. Nothing else of it is changed.

    python cookbook_http.py PATH/TO/api_request_parallel_processor.py --requests_filepath ... (its flags)
"""

import argparse
import asyncio
import importlib.util
import re
import sys


def main() -> None:
    spec = importlib.util.spec_from_file_location("cookbook_processor", sys.argv[1])
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)

    def endpoint(url: str) -> str:
        found = re.search(r"^https?://[^/]+/v\d+/(.+?)(\?|$)", url)
        if found is None:
            raise SystemExit(f"cannot find the API endpoint in {url}")
        return found[1]

    module.api_endpoint_from_url = endpoint

    parser = argparse.ArgumentParser()
    parser.add_argument("--requests_filepath", required=True)
    parser.add_argument("--save_filepath", required=True)
    parser.add_argument("--request_url", required=True)
    parser.add_argument("--api_key", default="sk-bench")
    parser.add_argument("--max_requests_per_minute", type=float, default=1_500)
    parser.add_argument("--max_tokens_per_minute", type=float, default=125_000)
    parser.add_argument("--token_encoding_name", default="cl100k_base")
    parser.add_argument("--max_attempts", type=int, default=5)
    parser.add_argument("--logging_level", type=int, default=20)
    args = parser.parse_args(sys.argv[2:])
    asyncio.run(module.process_api_requests_from_file(**vars(args)))


if __name__ == "__main__":
    main()
