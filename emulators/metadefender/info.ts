/**
 * The informational calls of specs/metadefender-core-api.md §8: `/version`, `/stat/engines`,
 * `/stat/nodes`, and `/file/rules` (rules usable by the caller's `user_agent`).
 */
import type { ResolvedOptions } from './config.js';
import type { Answer } from './http.js';

export function infoDocument(path: string, userAgent: string, o: ResolvedOptions, queued: number): Answer {
  switch (path) {
    case '/version':
      return { status: 200, json: { product_id: 'MSCL', version: o.version } };
    case '/stat/engines':
      return {
        status: 200,
        json: o.engines.map((e) => ({
          eng_id: `${e.name.toLowerCase()}_1_linux`,
          eng_name: e.name,
          eng_ver: e.version,
          eng_type: 'Bundled engine',
          engine_type: 'av',
          active: true,
          state: 'production',
          def_time: e.defTime,
          download_time: e.defTime,
          download_progress: 100,
        })),
      };
    case '/stat/nodes':
      return {
        status: 200,
        json: {
          external_nodes_allowed: false,
          max_node_count: 1,
          statuses: [
            {
              id: ':1',
              address: '',
              version: o.version,
              os: 'emulator',
              cpu_cores: 2,
              load: queued,
              scan_queue: queued,
              scan_queue_details: { available_slots: Math.max(0, o.maxQueue - queued), total_scan_queue: o.maxQueue },
              engines: [],
              issues: [],
            },
          ],
        },
      };
    default:
      // GET /file/rules
      return {
        status: 200,
        json: o.rules.filter((r) => !r.userAgents || r.userAgents.includes(userAgent)).map((r) => ({ name: r.name, max_file_size: r.maxFileSize })),
      };
  }
}
