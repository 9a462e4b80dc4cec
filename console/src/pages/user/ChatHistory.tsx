/** The chat page's conversation list: start a new chat, open, rename or delete a conversation. */
import type { QueryState } from '../../api/hooks';
import { common } from '../../i18n/common';
import { useText } from '../../i18n';
import { href } from '../../router';
import { ErrorBox, Loading } from '../../ui/components';
import { text } from './Chat.text';

export interface ConversationRow {
  id: string;
  title: string;
  provider: string | null;
  model: string | null;
  updatedAt: string;
}

export function ChatHistory({
  conversations,
  list,
  openId,
  onNew,
  onRename,
  onRemove,
}: {
  conversations: QueryState<{ conversations: { nodes: ConversationRow[] } }>;
  list: ConversationRow[];
  openId: string | undefined;
  onNew(): void;
  onRename(row: ConversationRow): void;
  onRemove(row: ConversationRow): void;
}) {
  const t = useText(text);
  const c = useText(common);
  return (
    <aside className="chat-history" aria-label={t.history}>
      <button type="button" className="primary chat-new" onClick={onNew}>
        {t.newChat}
      </button>
      <h2>{t.history}</h2>
      <Loading show={conversations.loading && !conversations.data} />
      <ErrorBox error={conversations.error} onRetry={conversations.reload} />
      <ul>
        {list.map((row) => (
          <li key={row.id}>
            <a href={href(`/chat/${row.id}`)} aria-current={row.id === openId ? 'page' : undefined} title={row.title}>
              {row.title || t.untitled}
            </a>
            <button
              type="button"
              className="icon"
              aria-label={`${t.rename}: ${row.title}`}
              title={t.rename}
              onClick={() => onRename(row)}
            >
              ✎
            </button>
            <button
              type="button"
              className="icon"
              aria-label={`${c.delete}: ${row.title}`}
              title={c.delete}
              onClick={() => onRemove(row)}
            >
              ×
            </button>
          </li>
        ))}
      </ul>
    </aside>
  );
}
