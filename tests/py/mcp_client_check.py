"""An outside MCP client (the official Python SDK) exercising aiops-mcp.

usage: mcp_client_check.py stdio <aiops-mcp binary> <namespace>
       mcp_client_check.py http <url> <namespace>
Prints one JSON object: what the server answered. The Rust test asserts on it.
"""

import asyncio
import json
import os
import sys

from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client
from mcp.client.streamable_http import streamable_http_client


def texts(result):
    return "\n".join(c.text for c in result.content if getattr(c, "type", "") == "text")


async def exercise(read, write, namespace):
    async with ClientSession(read, write) as session:
        init = await session.initialize()
        tools = await session.list_tools()
        listed = await session.call_tool("namespaces_list", {})
        manifest = f"apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: py-check, namespace: {namespace}}}\ndata: {{a: '1'}}\n"
        applied = await session.call_tool("resources_apply", {"manifest": manifest, "dry_run": True})
        bad = await session.call_tool("pods_list", {"namespace": "no-such-namespace-xyz"})
        prompts = await session.list_prompts()
        prompt = await session.get_prompt("troubleshoot-workload", {"namespace": namespace})
        templates = await session.list_resource_templates()
        health = await session.read_resource(f"k8s://-/namespaces/{namespace}/health")
        return {
            "server": init.server_info.name if init.server_info else None,
            "protocol": init.protocol_version,
            "tools": sorted(t.name for t in tools.tools),
            "namespaces_text": texts(listed),
            "namespaces_structured": listed.structured_content is not None,
            "apply_text": texts(applied),
            "apply_error": bool(applied.is_error),
            "bad_text": texts(bad),
            "bad_error": bool(bad.is_error),
            "prompts": [p.name for p in prompts.prompts],
            "prompt_text": prompt.messages[0].content.text,
            "resource_templates": [t.uri_template for t in templates.resource_templates],
            "health_text": "\n".join(getattr(c, "text", "") for c in health.contents),
        }


async def main():
    mode, target, namespace = sys.argv[1], sys.argv[2], sys.argv[3]
    if mode == "stdio":
        params = StdioServerParameters(command=target, args=["serve"], env={"KUBECONFIG": os.environ["KUBECONFIG"], "PATH": os.environ.get("PATH", "")})
        async with stdio_client(params) as (read, write):
            out = await exercise(read, write, namespace)
    else:
        async with streamable_http_client(target) as streams:
            out = await exercise(streams[0], streams[1], namespace)
    print(json.dumps(out))


asyncio.run(main())
