"""A fake Anthropic/OpenAI server on 127.0.0.1 for the SDK wrapper tests: answers each request
with the next scripted response (JSON, an SSE stream, an error status, or a stream cut off
mid-way) and logs every request it received."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Dict, List, Optional, Tuple


class FakeProvider:
    def __init__(self) -> None:
        self.requests: List[Tuple[str, Dict[str, Any]]] = []
        self._script: List[Dict[str, Any]] = []
        self._lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def _serve(self) -> None:
                n = int(self.headers.get("content-length") or 0)
                raw = self.rfile.read(n) if n else b""
                body = json.loads(raw) if raw else {}
                with fake._lock:
                    fake.requests.append((self.path, body))
                    step = fake._script.pop(0) if fake._script else {"status": 500, "json": {"error": "no scripted response"}}
                if "sse" in step:
                    self.send_response(200)
                    self.send_header("content-type", "text/event-stream")
                    self.send_header("connection", "close")
                    self.end_headers()
                    for event in step["sse"]:
                        if isinstance(event, str):
                            self.wfile.write(f"data: {event}\n\n".encode())
                        else:
                            name = event.get("type", "")
                            line = f"event: {name}\n" if step.get("named", True) else ""
                            self.wfile.write(f"{line}data: {json.dumps(event)}\n\n".encode())
                        self.wfile.flush()
                    self.close_connection = True
                    return
                if "raw" in step:
                    data = step["raw"].encode()
                else:
                    data = json.dumps(step.get("json", {})).encode()
                self.send_response(step.get("status", 200))
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                for k, v in step.get("headers", {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(data)

            do_POST = _serve
            do_GET = _serve

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    def script(self, *steps: Dict[str, Any]) -> None:
        with self._lock:
            self._script.extend(steps)

    def reset(self) -> None:
        with self._lock:
            self._script.clear()
            self.requests.clear()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def anthropic_message(
    id: str = "msg_01",
    model: str = "claude-sonnet-4-6",
    text: str = "Hello!",
    usage: Optional[Dict[str, Any]] = None,
) -> Dict[str, Any]:
    return {
        "id": id,
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": [{"type": "text", "text": text}],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": usage or {"input_tokens": 1000, "output_tokens": 2000},
    }


def anthropic_sse(id: str = "msg_s1", model: str = "claude-sonnet-4-6", cut: bool = False) -> List[Dict[str, Any]]:
    events: List[Dict[str, Any]] = [
        {
            "type": "message_start",
            "message": {
                "id": id, "type": "message", "role": "assistant", "model": model, "content": [],
                "stop_reason": None, "stop_sequence": None,
                "usage": {"input_tokens": 1000, "cache_read_input_tokens": 0, "cache_creation_input_tokens": 0, "output_tokens": 1},
            },
        },
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Hello"}},
        {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": ", world."}},
    ]
    if cut:
        return events
    return events + [
        {"type": "content_block_stop", "index": 0},
        {"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": None},
         "usage": {"input_tokens": 1000, "output_tokens": 2000}},
        {"type": "message_stop"},
    ]


def openai_chat(id: str = "chatcmpl-1", model: str = "gpt-4o", cached: int = 0) -> Dict[str, Any]:
    return {
        "id": id, "object": "chat.completion", "created": 1760000000, "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hi"}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 1000, "completion_tokens": 500, "total_tokens": 1500,
                  "prompt_tokens_details": {"cached_tokens": cached}},
    }


def openai_chat_sse(id: str = "chatcmpl-s", model: str = "gpt-4o", usage: bool = True) -> List[Any]:
    base = {"id": id, "object": "chat.completion.chunk", "created": 1760000000, "model": model}
    chunks: List[Any] = [
        {**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": "Hel"}, "finish_reason": None}]},
        {**base, "choices": [{"index": 0, "delta": {"content": "lo"}, "finish_reason": "stop"}]},
    ]
    if usage:
        chunks.append({**base, "choices": [], "usage": {"prompt_tokens": 1000, "completion_tokens": 500, "total_tokens": 1500}})
    return [json.dumps(c) for c in chunks] + ["[DONE]"]


def openai_response(id: str = "resp_1", model: str = "gpt-4o") -> Dict[str, Any]:
    return {
        "id": id, "object": "response", "created_at": 1760000000, "model": model, "status": "completed",
        "output": [{"type": "message", "id": "msg_1", "role": "assistant", "status": "completed",
                    "content": [{"type": "output_text", "text": "Hi", "annotations": []}]}],
        "parallel_tool_calls": True, "tool_choice": "auto", "tools": [],
        "usage": {"input_tokens": 1000, "output_tokens": 500, "total_tokens": 1500,
                  "input_tokens_details": {"cached_tokens": 0}, "output_tokens_details": {"reasoning_tokens": 0}},
    }


def openai_response_sse(id: str = "resp_s", model: str = "gpt-4o") -> List[Any]:
    done = openai_response(id, model)
    created = {**done, "status": "in_progress", "output": [], "usage": None}
    events = [
        {"type": "response.created", "sequence_number": 0, "response": created},
        {"type": "response.output_text.delta", "sequence_number": 1, "item_id": "msg_1", "output_index": 0,
         "content_index": 0, "delta": "Hi", "logprobs": []},
        {"type": "response.completed", "sequence_number": 2, "response": done},
    ]
    return [json.dumps(e) for e in events]
