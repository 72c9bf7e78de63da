/**
 * HTTP plumbing of the emulator: which route a request is, header access, the answer shape.
 */
import type { IncomingMessage } from 'node:http';
import type { Route } from './config.js';

/** What a route handler returns; emulator.ts writes it (and may garble it, faults.ts). */
export interface Answer {
  status: number;
  json?: unknown;
  /** Raw body (downloads, certificate). */
  raw?: { body: Buffer | string; type: string; headers?: Record<string, string> };
  /** Close the connection after answering (request body left unread). */
  close?: boolean;
  /** Extra headers of a JSON answer (Retry-After on an injected busy answer). */
  headers?: Record<string, string>;
}

/** Which kind of request a method and path are, and the id they name. */
export function classify(method: string, path: string): { route: Route | 'unknown'; id: string | undefined } {
  const seg = path.split('/').filter((s) => s !== '').map((s) => safeDecode(s));
  const [a, b, c] = seg;
  if (method === 'GET' && path === '/readyz') return { route: 'health', id: undefined };
  if (method === 'GET' && ['/version', '/stat/engines', '/stat/nodes', '/file/rules'].includes(path)) return { route: 'info', id: undefined };
  if (a === 'file' && b === 'batch') {
    if (seg.length === 2 && method === 'POST') return { route: 'batch', id: undefined };
    if (c !== undefined) return { route: 'batch', id: c };
  }
  if (method === 'POST' && path === '/file') return { route: 'submit', id: undefined };
  if (method === 'GET' && a === 'file' && b === 'converted' && c !== undefined && seg.length === 3) return { route: 'converted', id: c };
  if (method === 'POST' && a === 'file' && b !== undefined && c === 'cancel' && seg.length === 3) return { route: 'cancel', id: b };
  if (method === 'GET' && (a === 'file' || a === 'process') && b !== undefined && seg.length === 2) return { route: 'poll', id: b };
  if (method === 'GET' && a === 'hash' && b !== undefined && seg.length === 2) return { route: 'hash', id: b };
  return { route: 'unknown', id: undefined };
}

export function notFoundEndpoint(): Answer {
  return { status: 404, json: { err: 'Endpoint not found.' } };
}

export function header(req: IncomingMessage, name: string): string | undefined {
  const value = req.headers[name];
  return Array.isArray(value) ? value[0] : value;
}

/** Percent-decoded header text (filename, rule, user-data are sent percent-encoded, §2). */
export function decodeHeader(value: string | undefined): string | undefined {
  return value === undefined ? undefined : safeDecode(value);
}

export function safeDecode(value: string): string {
  try {
    return decodeURIComponent(value);
  } catch {
    return value;
  }
}

export async function readBody(req: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}
