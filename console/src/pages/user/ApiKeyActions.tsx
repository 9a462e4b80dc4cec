/** The rotate dialog (with a grace period for the old key) and the revoke confirmation of the API keys page. */
import { useState, type FormEvent } from 'react';
import { request, type ApiError, toApiError } from '../../api/client';
import { gql } from '../../api/gql';
import { common } from '../../i18n/common';
import { useText } from '../../i18n';
import { Dialog, ErrorBox } from '../../ui/components';
import { text } from './ApiKeys.text';
import { GRACES, type ApiKey, type Created, type Grace } from './apiKeysShared';

const ROTATE = gql`
  mutation ApiKeysRotate($id: ID!, $gracePeriodSeconds: Int) {
    rotateApiKey(id: $id, gracePeriodSeconds: $gracePeriodSeconds) {
      secret
      apiKey {
        id userId name prefix scope allowedModels state requestsPerMinute tokensPerMinute
        createdAt expiresAt revokedAt lastUsedAt lastUsedIp familyId
        budget { id period currency limitMicros spentMicros reservedMicros remainingMicros }
      }
    }
  }
`;

const REVOKE = gql`
  mutation ApiKeysRevoke($id: ID!) {
    revokeApiKey(id: $id) { id state revokedAt }
  }
`;

export function RotateDialog({ apiKey, onClose, onRotated }: { apiKey: ApiKey; onClose(): void; onRotated(created: Created): void }) {
  const t = useText(text);
  const c = useText(common);
  const [grace, setGrace] = useState<Grace>(0);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<ApiError>();
  const submit = async (event: FormEvent) => {
    event.preventDefault();
    setBusy(true);
    setError(undefined);
    try {
      const d = await request<{ rotateApiKey: Created }>(ROTATE, { id: apiKey.id, gracePeriodSeconds: grace });
      onRotated({ ...d.rotateApiKey, replaced: { id: apiKey.id, prefix: apiKey.prefix } });
    } catch (e) {
      setError(toApiError(e));
    } finally {
      setBusy(false);
    }
  };
  return (
    <Dialog open title={t.rotateTitle(apiKey.name)} onClose={onClose}>
      <form className="keys-form" onSubmit={(e) => void submit(e)}>
        <p>{t.rotateIntro}</p>
        <fieldset>
          <legend>{t.graceLegend}</legend>
          {GRACES.map((g) => (
            <label className="keys-choice" key={g}>
              <input type="radio" name="grace" value={g} checked={grace === g} onChange={() => setGrace(g)} />
              <span>{t[`grace${g}`]}</span>
            </label>
          ))}
        </fieldset>
        <ErrorBox error={error} />
        <div className="dialog-actions">
          <button type="button" onClick={onClose}>
            {c.cancel}
          </button>
          <button type="submit" className="primary" disabled={busy}>
            {t.rotateGo}
          </button>
        </div>
      </form>
    </Dialog>
  );
}

export function RevokeDialog({ apiKey, onClose, onRevoked }: { apiKey: ApiKey; onClose(): void; onRevoked(): void }) {
  const t = useText(text);
  const c = useText(common);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<ApiError>();
  const submit = async (event: FormEvent) => {
    event.preventDefault();
    setBusy(true);
    setError(undefined);
    try {
      await request(REVOKE, { id: apiKey.id });
      onRevoked();
    } catch (e) {
      setError(toApiError(e));
    } finally {
      setBusy(false);
    }
  };
  return (
    <Dialog open title={t.revokeTitle} onClose={onClose}>
      <form onSubmit={(e) => void submit(e)}>
        <p>{t.revokeQuestion(apiKey.name, apiKey.prefix)}</p>
        <ErrorBox error={error} />
        <div className="dialog-actions">
          <button type="button" onClick={onClose}>
            {c.cancel}
          </button>
          <button type="submit" className="danger" disabled={busy}>
            {t.revokeGo}
          </button>
        </div>
      </form>
    </Dialog>
  );
}
