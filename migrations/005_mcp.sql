-- MCP servers for agents.
ALTER TABLE agents ADD COLUMN mcp_servers TEXT NOT NULL DEFAULT '[]' CHECK (json_valid(mcp_servers));
