#!/usr/bin/env bash
# Install (once per machine; cached under $MAMBA_PEERS_ROOT, default ~/.cache/mamba-peers) and
# start the real servers the live conformance suite runs against, all on 127.0.0.1:
#   llama.cpp (llama-cpp-python + SmolLM2-135M)  :8081 own chat template
#                                                :8082 chatml-function-calling (tools)
#                                                :8083 own template, --api_key sk-llama-live
#                                                :8084 own template, --embedding true
#   LiteLLM proxy (in front of :8081 and :8082)  :4000 master key sk-peers-master
#   Prism mock of the official OpenAI spec       :4010 (validates request bodies: 422)
# Ports: MAMBA_PEER_PORTS="8081 8082 8083 4000 4010 8084" overrides them.
# Writes $PEERS_ROOT/live.env with the MAMBA_LIVE_* variables of the peers that came up.
# A peer that cannot be installed or started is skipped with a loud message, never silently.
# Usage: scripts/peers/up.sh         (stop them with scripts/peers/stop-all.sh)
set -uo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source "$here/common.sh"
read -r P_LLAMA P_LLAMA_FC P_LLAMA_KEY P_LITELLM P_PRISM P_LLAMA_EMB <<<"${MAMBA_PEER_PORTS:-8081 8082 8083 4000 4010 8084}"
P_LLAMA_EMB="${P_LLAMA_EMB:-8084}"
env_file="$PEERS_ROOT/live.env"
: > "$env_file"
skipped=()

loud_skip() { # WHAT WHY
  echo "!!!!!!!!!! SKIPPING live tests against $1: $2" >&2
  skipped+=("$1")
}

step() { # LOGNAME CMD...: run quietly into a log; on failure show its tail
  local log="$PEERS_LOGS/$1.log"; shift
  if "$@" >"$log" 2>&1; then return 0; fi
  tail -n 25 "$log" >&2
  return 1
}

if step install-llamacpp "$here/install-llamacpp.sh"; then
  ok=1
  step llamacpp-start-$P_LLAMA "$here/llamacpp.sh" start "$P_LLAMA" || ok=0
  LLAMACPP_CHAT_FORMAT=chatml-function-calling step llamacpp-start-$P_LLAMA_FC "$here/llamacpp.sh" start "$P_LLAMA_FC" || ok=0
  LLAMACPP_API_KEY=sk-llama-live step llamacpp-start-$P_LLAMA_KEY "$here/llamacpp.sh" start "$P_LLAMA_KEY" || ok=0
  LLAMACPP_EMBEDDING=1 step llamacpp-start-$P_LLAMA_EMB "$here/llamacpp.sh" start "$P_LLAMA_EMB" || ok=0
  if [ $ok = 1 ]; then
    {
      echo "export MAMBA_LIVE_LLAMACPP_URL=http://$PEERS_HOST:$P_LLAMA/v1"
      echo "export MAMBA_LIVE_LLAMACPP_FC_URL=http://$PEERS_HOST:$P_LLAMA_FC/v1"
      echo "export MAMBA_LIVE_LLAMACPP_KEY_URL=http://$PEERS_HOST:$P_LLAMA_KEY/v1"
      echo "export MAMBA_LIVE_LLAMACPP_KEY=sk-llama-live"
      echo "export MAMBA_LIVE_LLAMACPP_EMBED_URL=http://$PEERS_HOST:$P_LLAMA_EMB/v1"
    } >> "$env_file"
    echo "llama.cpp: up on :$P_LLAMA, :$P_LLAMA_FC (tools), :$P_LLAMA_KEY (api key), :$P_LLAMA_EMB (embeddings)"
  else
    loud_skip llama.cpp "a server did not start (logs in $PEERS_LOGS)"
  fi
else
  loud_skip llama.cpp "llama-cpp-python could not be installed (log: $PEERS_LOGS/install-llamacpp.log)"
fi

if step install-litellm "$here/install-litellm.sh"; then
  if LLAMACPP_PORT=$P_LLAMA LLAMACPP_FC_PORT=$P_LLAMA_FC LLAMACPP_EMBED_PORT=$P_LLAMA_EMB step litellm-start "$here/litellm.sh" start "$P_LITELLM"; then
    echo "export MAMBA_LIVE_LITELLM_URL=http://$PEERS_HOST:$P_LITELLM/v1" >> "$env_file"
    echo "export MAMBA_LIVE_LITELLM_KEY=sk-peers-master" >> "$env_file"
    echo "LiteLLM: up on :$P_LITELLM"
  else
    loud_skip LiteLLM "the proxy did not start (log: $PEERS_LOGS/litellm-$P_LITELLM.log)"
  fi
else
  loud_skip LiteLLM "litellm[proxy] could not be installed (log: $PEERS_LOGS/install-litellm.log)"
fi

if step install-prism "$here/install-prism.sh"; then
  if step prism-start "$here/prism.sh" start "$P_PRISM"; then
    echo "export MAMBA_LIVE_PRISM_URL=http://$PEERS_HOST:$P_PRISM" >> "$env_file"
    echo "Prism: up on :$P_PRISM"
  else
    loud_skip Prism "the mock did not start (log: $PEERS_LOGS/prism-$P_PRISM.log)"
  fi
else
  loud_skip Prism "@stoplight/prism-cli could not be installed (log: $PEERS_LOGS/install-prism.log)"
fi

echo "live peers: env in $env_file${skipped[*]:+; SKIPPED: ${skipped[*]}}"
exit 0
