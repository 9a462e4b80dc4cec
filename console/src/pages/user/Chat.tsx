/**
 * The user's chat: conversations on the left (open, rename, delete, start a new one), the
 * messages of the open one, and a composer that streams the reply (`chatStream`) delta by delta,
 * with Stop (closing the subscription cancels the upstream call; it is recorded `CANCELLED`) and,
 * when the reply ends, its tokens, time and cost.
 */
import { useEffect, useMemo, useRef, useState, type FormEvent, type KeyboardEvent } from 'react';
import type { ViewProps } from '../../App';
import { ApiError, request, subscribe, type Subscription, toApiError } from '../../api/client';
import { gql } from '../../api/gql';
import { useQuery } from '../../api/hooks';
import { common } from '../../i18n/common';
import { useText } from '../../i18n';
import { navigate } from '../../router';
import { Dialog, ErrorBox, Field, Loading } from '../../ui/components';
import { text } from './Chat.text';
import { ChatHistory, type ConversationRow } from './ChatHistory';
import { Message, type CallSummary, type Turn } from './ChatMessage';
import './Chat.css';

const MODELS = gql`
  query ChatModels {
    models { provider id displayName mock }
  }
`;

const CONVERSATIONS = gql`
  query ChatConversations($after: String) {
    conversations(first: 50, after: $after) {
      nodes { id title provider model updatedAt }
      pageInfo { hasNextPage endCursor }
    }
  }
`;

const MESSAGES = gql`
  query ChatMessages($id: ID!, $after: String) {
    conversation(id: $id) {
      id
      title
      provider
      model
      messages(first: 100, after: $after) {
        nodes { id role content reasoning aiCallId createdAt }
        pageInfo { hasNextPage endCursor }
      }
    }
  }
`;

const CREATE = gql`
  mutation ChatCreateConversation($title: String, $provider: String, $model: String) {
    createConversation(title: $title, provider: $provider, model: $model) { id title }
  }
`;

const RENAME = gql`
  mutation ChatRenameConversation($id: ID!, $title: String!) {
    renameConversation(id: $id, title: $title) { id title }
  }
`;

const DELETE = gql`
  mutation ChatDeleteConversation($id: ID!) {
    deleteConversation(id: $id)
  }
`;

const STREAM = gql`
  subscription ChatStream($input: ChatInput!) {
    chatStream(input: $input) {
      aiCallId
      delta
      reasoningDelta
      done
      finishReason
      aiCall {
        id status promptTokens cachedPromptTokens completionTokens costMicros currency latencyMs ttftMs cached
      }
    }
  }
`;

interface ModelRow {
  provider: string;
  id: string;
  displayName: string;
  mock: boolean;
}

interface StreamEvent {
  chatStream: {
    aiCallId: string;
    delta: string;
    reasoningDelta: string;
    done: boolean;
    finishReason: string | null;
    aiCall: CallSummary | null;
  };
}

const SEP = '\u0000';

export function Chat({ route }: ViewProps) {
  const t = useText(text);
  const c = useText(common);
  const openId = route.path[1];

  const models = useQuery<{ models: ModelRow[] }>(MODELS);
  const conversations = useQuery<{ conversations: { nodes: ConversationRow[] } }>(CONVERSATIONS);
  const [turns, setTurns] = useState<Turn[]>([]);
  const [loadingTurns, setLoadingTurns] = useState(false);
  const [error, setError] = useState<ApiError>();
  const [choice, setChoice] = useState('');
  const [draft, setDraft] = useState('');
  const [live, setLive] = useState<Subscription | null>(null);
  const [renaming, setRenaming] = useState<ConversationRow | null>(null);
  const [newTitle, setNewTitle] = useState('');
  const bottom = useRef<HTMLDivElement>(null);
  const streamed = useRef<string | null>(null);

  const list = conversations.data?.conversations.nodes ?? [];
  const open = list.find((x) => x.id === openId);
  const modelList = models.data?.models ?? [];

  // The model: the open conversation's, else the last one picked, else the first real model.
  useEffect(() => {
    if (open?.provider && open.model) setChoice(`${open.provider}${SEP}${open.model}`);
  }, [open?.provider, open?.model]);
  useEffect(() => {
    if (choice || modelList.length === 0) return;
    const first = modelList.find((m) => !m.mock) ?? modelList[0];
    setChoice(`${first.provider}${SEP}${first.id}`);
  }, [choice, modelList]);

  // The open conversation's messages (every page), unless its turns were just streamed here.
  useEffect(() => {
    if (!openId) {
      setTurns([]);
      return undefined;
    }
    if (streamed.current === openId) return undefined;
    let live = true;
    setLoadingTurns(true);
    setError(undefined);
    (async () => {
      const all: Turn[] = [];
      let after: string | null = null;
      for (let page = 0; page < 20; page += 1) {
        const data: {
          conversation: {
            messages: {
              nodes: { id: string; role: Turn['role']; content: string; reasoning: string | null }[];
              pageInfo: { hasNextPage: boolean; endCursor: string | null };
            };
          };
        } = await request(MESSAGES, { id: openId, after });
        for (const m of data.conversation.messages.nodes)
          all.push({ key: m.id, role: m.role, content: m.content, reasoning: m.reasoning });
        if (!data.conversation.messages.pageInfo.hasNextPage) break;
        after = data.conversation.messages.pageInfo.endCursor;
      }
      if (live) setTurns(all);
    })()
      .catch((e: unknown) => live && setError(toApiError(e)))
      .finally(() => live && setLoadingTurns(false));
    return () => {
      live = false;
    };
  }, [openId]);

  useEffect(() => {
    bottom.current?.scrollIntoView({ block: 'end' });
  }, [turns]);

  // Leaving the page stops a stream in flight (and so cancels its call).
  useEffect(() => () => live?.stop(), [live]);

  const [provider, model] = choice ? choice.split(SEP) : [undefined, undefined];

  const send = async (event?: FormEvent) => {
    event?.preventDefault();
    const message = draft.trim();
    if (!message || live) return;
    setError(undefined);
    let conversationId = openId;
    try {
      if (!conversationId) {
        const title = message.length > 60 ? `${message.slice(0, 57)}…` : message;
        const created = await request<{ createConversation: { id: string } }>(CREATE, { title, provider, model });
        conversationId = created.createConversation.id;
        streamed.current = conversationId;
        navigate(`/chat/${conversationId}`);
      }
    } catch (e) {
      setError(toApiError(e));
      return;
    }
    streamed.current = conversationId;
    setDraft('');
    const replyKey = `reply-${Date.now()}`;
    setTurns((ts) => [
      ...ts,
      { key: `ask-${Date.now()}`, role: 'USER', content: message },
      { key: replyKey, role: 'ASSISTANT', content: '', reasoning: '', streaming: true },
    ]);
    const update = (change: (turn: Turn) => Turn) =>
      setTurns((ts) => ts.map((turn) => (turn.key === replyKey ? change(turn) : turn)));
    const finish = () => {
      setLive(null);
      conversations.reload();
    };
    const sub = subscribe<StreamEvent>(
      STREAM,
      { input: { conversationId, message, provider, model } },
      ({ chatStream: ev }) => {
        update((turn) => ({
          ...turn,
          content: turn.content + ev.delta,
          reasoning: (turn.reasoning ?? '') + ev.reasoningDelta,
          streaming: !ev.done,
          call: ev.aiCall ?? turn.call,
        }));
        if (ev.done) finish();
      },
      (e) => {
        update((turn) => ({ ...turn, streaming: false }));
        setError(e);
        finish();
      },
      () => {
        update((turn) => ({ ...turn, streaming: false }));
        finish();
      },
    );
    setLive(sub);
  };

  const stop = () => {
    live?.stop();
    setTurns((ts) => ts.map((turn) => (turn.streaming ? { ...turn, streaming: false, stopped: true } : turn)));
    setLive(null);
    conversations.reload();
  };

  const onKey = (e: KeyboardEvent<HTMLTextAreaElement>) => {
    if (e.key === 'Enter' && !e.shiftKey && !e.nativeEvent.isComposing) {
      e.preventDefault();
      void send();
    }
  };

  const startNew = () => {
    live?.stop();
    setLive(null);
    streamed.current = null;
    setTurns([]);
    navigate('/chat');
  };

  const rename = async (event: FormEvent) => {
    event.preventDefault();
    if (!renaming) return;
    try {
      await request(RENAME, { id: renaming.id, title: newTitle });
      setRenaming(null);
      conversations.reload();
    } catch (e) {
      setError(toApiError(e));
    }
  };

  const remove = async (row: ConversationRow) => {
    if (!window.confirm(t.deleteTitle)) return;
    try {
      await request(DELETE, { id: row.id });
      if (row.id === openId) startNew();
      conversations.reload();
    } catch (e) {
      setError(toApiError(e));
    }
  };

  const modelOptions = useMemo(
    () =>
      modelList.map((m) => (
        <option key={`${m.provider}/${m.id}`} value={`${m.provider}${SEP}${m.id}`}>
          {m.provider} / {m.displayName}
        </option>
      )),
    [modelList],
  );

  return (
    <div className="chat">
      <ChatHistory
        conversations={conversations}
        list={list}
        openId={openId}
        onNew={startNew}
        onRename={(row) => {
          setRenaming(row);
          setNewTitle(row.title);
        }}
        onRemove={(row) => void remove(row)}
      />
      <section className="chat-main" aria-labelledby="page-title">
        <div className="chat-bar">
          <h1 id="page-title" className="chat-title">
            {open?.title ?? t.title}
          </h1>
          <label className="chat-model">
            <span>{t.model}</span>
            <select value={choice} onChange={(e) => setChoice(e.target.value)} disabled={!!live}>
              {modelOptions}
            </select>
          </label>
        </div>
        <div className="messages" aria-live="polite">
          <Loading show={loadingTurns} />
          {!loadingTurns && turns.length === 0 && (
            <p className="muted">{modelList.length === 0 && models.data ? t.noModels : t.empty}</p>
          )}
          {turns.map((turn) => (
            <Message key={turn.key} turn={turn} />
          ))}
          <div ref={bottom} />
        </div>
        <ErrorBox error={error} />
        <form className="composer" onSubmit={(e) => void send(e)}>
          <Field label={t.message}>
            <textarea
              value={draft}
              onChange={(e) => setDraft(e.target.value)}
              onKeyDown={onKey}
              placeholder={t.placeholder}
              rows={3}
              maxLength={100_000}
            />
          </Field>
          {live ? (
            <button type="button" className="danger" onClick={stop}>
              {t.stop}
            </button>
          ) : (
            <button type="submit" className="primary" disabled={!draft.trim() || !choice}>
              {t.send}
            </button>
          )}
        </form>
      </section>
      <Dialog open={!!renaming} title={t.renameTitle} onClose={() => setRenaming(null)}>
        <form onSubmit={(e) => void rename(e)}>
          <Field label={t.name}>
            <input value={newTitle} onChange={(e) => setNewTitle(e.target.value)} required maxLength={200} autoFocus />
          </Field>
          <div className="dialog-actions">
            <button type="button" onClick={() => setRenaming(null)}>
              {c.cancel}
            </button>
            <button type="submit" className="primary">
              {c.save}
            </button>
          </div>
        </form>
      </Dialog>
    </div>
  );
}
