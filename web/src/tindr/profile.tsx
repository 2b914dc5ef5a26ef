/** The profile editor: details, preferences, location, and up to 5 photos (upload, reorder, delete). */
import { useEffect, useState } from 'preact/hooks';
import { api } from '../api.js';
import { ErrorText, notify } from '../ui/notices.js';
import { Page } from '../ui/page.js';
import { GENDERS, type Gender, type ImageRef, type MyProfile } from './types.js';

const MAX_PHOTOS = 5;

export function ProfilePage() {
  const [profile, setProfile] = useState<MyProfile | null>(null);
  const [loadError, setLoadError] = useState<unknown>(null);

  async function reload() {
    try {
      const { profile } = await api<{ profile: MyProfile }>('GET', '/v1/profile');
      setProfile(profile);
    } catch (err) {
      setLoadError(err);
    }
  }
  useEffect(() => {
    void reload();
  }, []);

  return (
    <Page title="Your profile">
      <ErrorText error={loadError} />
      {profile && (
        <div class="profile-layout">
          <Photos images={profile.images} onChange={(images) => setProfile({ ...profile, images })} />
          <DetailsForm profile={profile} onSaved={reload} />
        </div>
      )}
    </Page>
  );
}

function Photos({ images, onChange }: { images: ImageRef[]; onChange: (images: ImageRef[]) => void }) {
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);
  const [dragging, setDragging] = useState<string | null>(null);

  async function refresh() {
    const { images } = await api<{ images: ImageRef[] }>('GET', '/v1/profile/images');
    onChange(images);
  }

  async function upload(files: FileList | null) {
    if (!files || files.length === 0) return;
    setBusy(true);
    setError(null);
    try {
      const room = MAX_PHOTOS - images.length;
      const chosen = [...files].slice(0, Math.max(room, 0));
      if (chosen.length < files.length) setError(new Error(`A profile has at most ${MAX_PHOTOS} photos: ${files.length - chosen.length} not uploaded.`));
      for (const file of chosen) {
        await api('POST', '/v1/profile/images', { body: file, contentType: file.type || 'application/octet-stream' });
      }
      await refresh();
      if (chosen.length) notify(chosen.length === 1 ? 'Photo added.' : `${chosen.length} photos added.`);
    } catch (err) {
      setError(err);
      await refresh().catch(() => undefined);
    } finally {
      setBusy(false);
    }
  }

  async function reorder(ids: string[]) {
    const before = images;
    // show the new order at once; put it back if the server refuses
    onChange(ids.map((id, position) => ({ ...images.find((i) => i.imageId === id)!, position })));
    try {
      await api('PUT', '/v1/profile/images/order', { json: { imageIds: ids } });
    } catch (err) {
      onChange(before);
      setError(err);
    }
  }

  function move(index: number, delta: number) {
    const ids = images.map((i) => i.imageId);
    const target = index + delta;
    if (target < 0 || target >= ids.length) return;
    [ids[index], ids[target]] = [ids[target]!, ids[index]!];
    void reorder(ids);
  }

  async function remove(imageId: string) {
    setError(null);
    try {
      await api('DELETE', `/v1/profile/images/${imageId}`);
      await refresh();
      notify('Photo deleted.');
    } catch (err) {
      setError(err);
    }
  }

  function drop(targetId: string) {
    if (!dragging || dragging === targetId) return;
    const ids = images.map((i) => i.imageId).filter((id) => id !== dragging);
    ids.splice(ids.indexOf(targetId) + (images.findIndex((i) => i.imageId === dragging) < images.findIndex((i) => i.imageId === targetId) ? 1 : 0), 0, dragging);
    setDragging(null);
    void reorder(ids);
  }

  return (
    <section class="card" aria-labelledby="photos-heading">
      <h2 id="photos-heading">
        Photos <span class="muted">({images.length} of {MAX_PHOTOS})</span>
      </h2>
      <p class="hint">The first photo is the one people see first. Drag photos, or use the arrows, to change the order.</p>
      <ol class="photo-grid" data-testid="photo-grid">
        {images.map((img, i) => (
          <li
            key={img.imageId}
            class={dragging === img.imageId ? 'photo dragging' : 'photo'}
            draggable
            onDragStart={(e) => {
              setDragging(img.imageId);
              e.dataTransfer?.setData('text/plain', img.imageId);
            }}
            onDragOver={(e) => e.preventDefault()}
            onDrop={(e) => {
              e.preventDefault();
              drop(img.imageId);
            }}
            onDragEnd={() => setDragging(null)}
          >
            <img src={img.url} alt={`Photo ${i + 1}`} />
            <div class="photo-actions">
              <button type="button" aria-label={`Move photo ${i + 1} earlier`} disabled={i === 0} onClick={() => move(i, -1)}>
                ←
              </button>
              <button type="button" aria-label={`Move photo ${i + 1} later`} disabled={i === images.length - 1} onClick={() => move(i, 1)}>
                →
              </button>
              <button type="button" class="danger" aria-label={`Delete photo ${i + 1}`} onClick={() => remove(img.imageId)}>
                Delete
              </button>
            </div>
          </li>
        ))}
      </ol>
      {images.length < MAX_PHOTOS && (
        <label class="file-button">
          {busy ? 'Uploading…' : 'Add photos'}
          <input
            type="file"
            accept="image/jpeg,image/png,image/webp"
            multiple
            disabled={busy}
            onChange={(e) => {
              const input = e.currentTarget;
              void upload(input.files).finally(() => (input.value = ''));
            }}
          />
        </label>
      )}
      <p class="hint">JPEG, PNG or WebP, up to 5 MB each.</p>
      <ErrorText error={error} />
    </section>
  );
}

function DetailsForm({ profile, onSaved }: { profile: MyProfile; onSaved: () => void }) {
  const [displayName, setDisplayName] = useState(profile.displayName);
  const [birthDate, setBirthDate] = useState(profile.birthDate);
  const [gender, setGender] = useState<Gender>(profile.gender);
  const [bio, setBio] = useState(profile.bio);
  const [lat, setLat] = useState(profile.location ? String(profile.location.lat) : '');
  const [lon, setLon] = useState(profile.location ? String(profile.location.lon) : '');
  const [ageMin, setAgeMin] = useState(String(profile.preferences.ageMin));
  const [ageMax, setAgeMax] = useState(String(profile.preferences.ageMax));
  const [genders, setGenders] = useState<Gender[]>(profile.preferences.genders);
  const [maxDistanceKm, setMaxDistanceKm] = useState(String(profile.preferences.maxDistanceKm));
  const [showPresence, setShowPresence] = useState(profile.showPresence);
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);

  function locate() {
    if (!navigator.geolocation) {
      setError(new Error('This browser cannot tell your location: type it in.'));
      return;
    }
    navigator.geolocation.getCurrentPosition(
      (pos) => {
        setLat(pos.coords.latitude.toFixed(4));
        setLon(pos.coords.longitude.toFixed(4));
      },
      (err) => setError(new Error(`Could not get your location (${err.message}): type it in.`)),
    );
  }

  async function save(e: Event) {
    e.preventDefault();
    setError(null);
    if (genders.length === 0) {
      setError(new Error('Choose at least one gender you are interested in.'));
      return;
    }
    const patch: Record<string, unknown> = {
      displayName,
      birthDate,
      gender,
      bio,
      showPresence,
      preferences: { ageMin: Number(ageMin), ageMax: Number(ageMax), genders, maxDistanceKm: Number(maxDistanceKm) },
    };
    if (lat.trim() === '' && lon.trim() === '') patch.location = null;
    else patch.location = { lat: Number(lat), lon: Number(lon) };
    setBusy(true);
    try {
      await api('PATCH', '/v1/profile', { json: patch });
      notify('Profile saved.');
      onSaved();
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  }

  return (
    <form class="card form" onSubmit={save} aria-labelledby="details-heading">
      <h2 id="details-heading">About you</h2>
      <label>
        Name
        <input name="displayName" required maxLength={64} value={displayName} onInput={(e) => setDisplayName(e.currentTarget.value)} />
      </label>
      <div class="row">
        <label>
          Birth date
          <input name="birthDate" type="date" required value={birthDate} onInput={(e) => setBirthDate(e.currentTarget.value)} />
        </label>
        {/* label by id: a wrapping label would add the chosen option to the select's name */}
        <div class="field">
          <label for="profile-gender">Gender</label>
          <select id="profile-gender" name="gender" value={gender} onChange={(e) => setGender(e.currentTarget.value as Gender)}>
            {GENDERS.map((g) => (
              <option value={g}>{g}</option>
            ))}
          </select>
        </div>
      </div>
      <label>
        Bio
        <textarea name="bio" maxLength={500} rows={3} value={bio} onInput={(e) => setBio(e.currentTarget.value)} />
      </label>
      <fieldset>
        <legend>Location</legend>
        <div class="row">
          <label>
            Latitude
            <input name="lat" inputMode="decimal" value={lat} onInput={(e) => setLat(e.currentTarget.value)} />
          </label>
          <label>
            Longitude
            <input name="lon" inputMode="decimal" value={lon} onInput={(e) => setLon(e.currentTarget.value)} />
          </label>
        </div>
        <button type="button" onClick={locate}>
          Use my location
        </button>
        <p class="hint">Your deck shows people near this point; others see only a rounded distance.</p>
      </fieldset>
      <fieldset>
        <legend>Looking for</legend>
        <div class="row">
          <label>
            Age from
            <input name="ageMin" type="number" min={18} max={120} required value={ageMin} onInput={(e) => setAgeMin(e.currentTarget.value)} />
          </label>
          <label>
            to
            <input name="ageMax" type="number" min={18} max={120} required value={ageMax} onInput={(e) => setAgeMax(e.currentTarget.value)} />
          </label>
          <label>
            Within (km)
            <input name="maxDistanceKm" type="number" min={1} max={20000} required value={maxDistanceKm} onInput={(e) => setMaxDistanceKm(e.currentTarget.value)} />
          </label>
        </div>
        <div class="checks" role="group" aria-label="Genders">
          {GENDERS.map((g) => (
            <label class="check">
              <input
                type="checkbox"
                name={`gender-${g}`}
                checked={genders.includes(g)}
                onChange={(e) => setGenders(e.currentTarget.checked ? [...genders, g] : genders.filter((x) => x !== g))}
              />
              {g}
            </label>
          ))}
        </div>
      </fieldset>
      <label class="check">
        <input type="checkbox" name="showPresence" checked={showPresence} onChange={(e) => setShowPresence(e.currentTarget.checked)} />
        Show my matches when I am online
      </label>
      <ErrorText error={error} />
      <button type="submit" class="primary" disabled={busy}>
        Save profile
      </button>
    </form>
  );
}

