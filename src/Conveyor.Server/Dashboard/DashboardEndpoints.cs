using System.IO.Compression;
using System.Reflection;
using System.Security.Cryptography;
using System.Text;
using Microsoft.Net.Http.Headers;

namespace Conveyor.Server.Dashboard;

/// <summary>
/// The web dashboard: static files embedded in this assembly (<c>Dashboard/wwwroot</c>, logical names
/// <c>dashboard/…</c>), served from memory. <c>/</c> is the page; every other file is under
/// <c>/dashboard/assets/{version}/</c>, where the version is a hash of all the files, so browsers may cache them for a
/// year and still see a new build at once. The page itself is revalidated on every load (ETag, 304).
/// The page holds no data: it reads the v1 API with the user's key, so the files need no access check.
/// </summary>
public static class DashboardEndpoints
{
    private const string ResourcePrefix = "dashboard/";
    private const string AssetRoute = "/dashboard/assets";

    // No inline script or style, nothing from another origin: a job payload that smuggles markup cannot run code.
    private const string ContentSecurityPolicy =
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; " +
        "object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'none'";

    /// <summary>Maps the page, its files and the dashboard's API routes, and starts the throughput sampler with the app.</summary>
    public static void Map(WebApplication app)
    {
        ArgumentNullException.ThrowIfNull(app);
        var files = EmbeddedFiles.Load(typeof(DashboardEndpoints).Assembly, ResourcePrefix);
        var version = files.Version;
        var prefix = $"{AssetRoute}/{version}/";
        if (!files.TryGet("index.html", out var template))
            throw new InvalidOperationException("The dashboard's index.html is not embedded in the server assembly: check the EmbeddedResource item in Conveyor.Server.csproj.");
        var index = StaticFile.Create("index.html", Encoding.UTF8.GetBytes(Encoding.UTF8.GetString(template.Raw).Replace("{{assets}}", prefix, StringComparison.Ordinal)));

        app.MapGet("/", (HttpContext context) => Serve(context, index, immutable: false, page: true)).ExcludeFromDescription();
        app.MapGet("/index.html", () => Results.Redirect("/")).ExcludeFromDescription();
        app.MapGet("/favicon.ico", (HttpContext context) =>
            files.TryGet("favicon.svg", out var icon) ? Serve(context, icon, immutable: false, page: false) : Results.NotFound()).ExcludeFromDescription();
        app.MapGet(AssetRoute + "/{requested}/{**path}", (HttpContext context, string requested, string path) =>
            // An old page asking for an old version gets today's file, revalidated rather than cached for a year.
            files.TryGet(path, out var file) && path != "index.html"
                ? Serve(context, file, immutable: requested == version, page: false)
                : Results.NotFound()).ExcludeFromDescription();

        var history = new StatsHistory();
        DashboardApi.Map(app, history);
        StartSampler(app, history);
    }

    /// <summary>
    /// The sampler lives as long as the application: it starts once the server listens and stops when shutdown begins,
    /// before the store is disposed (the store is a singleton disposed with the container, after the host has stopped).
    /// </summary>
    private static void StartSampler(WebApplication app, StatsHistory history)
    {
        var sampler = ActivatorUtilities.CreateInstance<StatsSampler>(app.Services, history);
        var stopping = app.Lifetime.ApplicationStopping;
        app.Lifetime.ApplicationStarted.Register(() => _ = Task.Run(() => sampler.RunAsync(stopping), CancellationToken.None));
    }

    private static IResult Serve(HttpContext context, StaticFile file, bool immutable, bool page)
    {
        var headers = context.Response.Headers;
        headers.CacheControl = immutable ? "public, max-age=31536000, immutable" : "no-cache";
        headers.ETag = file.ETag;
        headers.XContentTypeOptions = "nosniff";
        if (page)
        {
            headers.ContentSecurityPolicy = ContentSecurityPolicy;
            headers["Referrer-Policy"] = "no-referrer";
            headers.XFrameOptions = "DENY";
        }
        if (file.Gzip is not null) headers.Vary = "Accept-Encoding";
        var ifNoneMatch = context.Request.Headers.IfNoneMatch;
        if (ifNoneMatch.Count > 0 && EntityTagHeaderValue.TryParseList(ifNoneMatch, out var tags)
            && tags.Any(t => t.Tag == EntityTagHeaderValue.Any.Tag || t.Tag == file.ETag))
            return Results.StatusCode(StatusCodes.Status304NotModified);
        if (file.Gzip is not null && AcceptsGzip(context.Request))
        {
            headers.ContentEncoding = "gzip";
            return Results.Bytes(file.Gzip, file.ContentType);
        }
        return Results.Bytes(file.Raw, file.ContentType);
    }

    private static bool AcceptsGzip(HttpRequest request) =>
        StringWithQualityHeaderValue.TryParseList(request.Headers.AcceptEncoding, out var encodings)
        && encodings.Any(e => e.Value.Equals("gzip", StringComparison.OrdinalIgnoreCase) && e.Quality is not 0);

    /// <summary>The dashboard's files, read once from the assembly's resources.</summary>
    private sealed class EmbeddedFiles(Dictionary<string, StaticFile> files, string version)
    {
        public string Version { get; } = version;

        public bool TryGet(string path, out StaticFile file) => files.TryGetValue(path, out file!);

        public static EmbeddedFiles Load(Assembly assembly, string prefix)
        {
            var files = new Dictionary<string, StaticFile>(StringComparer.Ordinal);
            using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
            foreach (var name in assembly.GetManifestResourceNames().Where(n => n.StartsWith(prefix, StringComparison.Ordinal)).Order(StringComparer.Ordinal))
            {
                using var stream = assembly.GetManifestResourceStream(name)!;
                using var copy = new MemoryStream();
                stream.CopyTo(copy);
                var path = name[prefix.Length..].Replace('\\', '/');
                var file = StaticFile.Create(path, copy.ToArray());
                files[path] = file;
                hash.AppendData(Encoding.UTF8.GetBytes(path));
                hash.AppendData(file.Raw);
            }
            return new EmbeddedFiles(files, Convert.ToHexStringLower(hash.GetHashAndReset())[..12]);
        }
    }

    private sealed record StaticFile(string ContentType, byte[] Raw, byte[]? Gzip, string ETag)
    {
        public static StaticFile Create(string path, byte[] raw)
        {
            var type = Path.GetExtension(path) switch
            {
                ".html" => "text/html; charset=utf-8",
                ".js" => "text/javascript; charset=utf-8",
                ".css" => "text/css; charset=utf-8",
                ".svg" => "image/svg+xml",
                ".json" => "application/json; charset=utf-8",
                ".png" => "image/png",
                ".woff2" => "font/woff2",
                _ => "application/octet-stream",
            };
            byte[]? gzip = null;
            if (type.StartsWith("text/", StringComparison.Ordinal) || type.StartsWith("image/svg", StringComparison.Ordinal) || type.StartsWith("application/json", StringComparison.Ordinal))
            {
                using var buffer = new MemoryStream();
                using (var zip = new GZipStream(buffer, CompressionLevel.SmallestSize, leaveOpen: true)) zip.Write(raw);
                if (buffer.Length < raw.Length) gzip = buffer.ToArray();
            }
            return new StaticFile(type, raw, gzip, $"\"{Convert.ToHexStringLower(SHA256.HashData(raw))[..16]}\"");
        }
    }
}
