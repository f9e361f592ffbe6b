package deepij.plugin;

import java.util.ArrayList;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * The JSON of the channel to the deepij worker: one object per line (public for {@code deepij gui} and
 * tests). Objects read into {@code LinkedHashMap<String,Object>}, arrays into {@code ArrayList<Object>}, numbers into {@code Double}
 * (or {@code Long} when whole), plus {@code String}, {@code Boolean} and {@code null}. Written the same way.
 * Small on purpose: ImageJ 1.x has no JSON library and the plugin must depend on {@code ij.jar} alone.
 */
public final class Json {

    private final String text;
    private int at;

    private Json(String text) {
        this.text = text;
    }

    /** Reads one JSON value. */
    public static Object parse(String text) {
        Json reader = new Json(text);
        Object value = reader.value();
        reader.space();
        if (reader.at != text.length())
            throw reader.failure("text after the value");
        return value;
    }

    /** Reads one JSON object. */
    @SuppressWarnings("unchecked")
    static Map<String, Object> object(String text) {
        Object value = parse(text);
        if (!(value instanceof Map))
            throw new IllegalArgumentException("expected a JSON object, found: " + shorten(text));
        return (Map<String, Object>) value;
    }

    /** Writes a value (maps, lists, arrays of strings, strings, numbers, booleans, null) on one line. */
    public static String write(Object value) {
        StringBuilder out = new StringBuilder();
        write(value, out);
        return out.toString();
    }

    // --------------------------------------------------------------------------------------------- writing
    private static void write(Object value, StringBuilder out) {
        if (value == null) {
            out.append("null");
        } else if (value instanceof String) {
            quote((String) value, out);
        } else if (value instanceof Boolean) {
            out.append(value.toString());
        } else if (value instanceof Double || value instanceof Float) {
            double number = ((Number) value).doubleValue();
            if (Double.isNaN(number) || Double.isInfinite(number))
                out.append("null");
            else if (number == Math.rint(number) && Math.abs(number) < 1e15)
                out.append((long) number);
            else
                out.append(number);
        } else if (value instanceof Number) {
            out.append(((Number) value).longValue());
        } else if (value instanceof Map) {
            out.append('{');
            Iterator<? extends Map.Entry<?, ?>> entries = ((Map<?, ?>) value).entrySet().iterator();
            while (entries.hasNext()) {
                Map.Entry<?, ?> entry = entries.next();
                quote(String.valueOf(entry.getKey()), out);
                out.append(':');
                write(entry.getValue(), out);
                if (entries.hasNext())
                    out.append(',');
            }
            out.append('}');
        } else if (value instanceof Iterable || value instanceof Object[]) {
            Iterable<?> items = value instanceof Object[] ? java.util.Arrays.asList((Object[]) value)
                    : (Iterable<?>) value;
            out.append('[');
            boolean first = true;
            for (Object item : items) {
                if (!first)
                    out.append(',');
                write(item, out);
                first = false;
            }
            out.append(']');
        } else {
            quote(value.toString(), out);
        }
    }

    private static void quote(String text, StringBuilder out) {
        out.append('"');
        for (int i = 0; i < text.length(); i++) {
            char c = text.charAt(i);
            switch (c) {
                case '"': out.append("\\\""); break;
                case '\\': out.append("\\\\"); break;
                case '\n': out.append("\\n"); break;
                case '\r': out.append("\\r"); break;
                case '\t': out.append("\\t"); break;
                default:
                    if (c < 0x20 || c == 0x2028 || c == 0x2029)
                        out.append(String.format("\\u%04x", (int) c));
                    else
                        out.append(c);
            }
        }
        out.append('"');
    }

    // --------------------------------------------------------------------------------------------- reading
    private Object value() {
        space();
        if (at >= text.length())
            throw failure("a value");
        char c = text.charAt(at);
        if (c == '{')
            return readObject();
        if (c == '[')
            return readArray();
        if (c == '"')
            return readString();
        if (text.startsWith("true", at)) {
            at += 4;
            return Boolean.TRUE;
        }
        if (text.startsWith("false", at)) {
            at += 5;
            return Boolean.FALSE;
        }
        if (text.startsWith("null", at)) {
            at += 4;
            return null;
        }
        return readNumber();
    }

    private Map<String, Object> readObject() {
        Map<String, Object> map = new LinkedHashMap<String, Object>();
        at++;
        space();
        if (peek() == '}') {
            at++;
            return map;
        }
        while (true) {
            space();
            if (peek() != '"')
                throw failure("a quoted key");
            String key = readString();
            space();
            expect(':');
            map.put(key, value());
            space();
            char c = next();
            if (c == '}')
                return map;
            if (c != ',')
                throw failure("',' or '}'");
        }
    }

    private List<Object> readArray() {
        List<Object> list = new ArrayList<Object>();
        at++;
        space();
        if (peek() == ']') {
            at++;
            return list;
        }
        while (true) {
            list.add(value());
            space();
            char c = next();
            if (c == ']')
                return list;
            if (c != ',')
                throw failure("',' or ']'");
        }
    }

    private String readString() {
        at++;
        StringBuilder out = new StringBuilder();
        while (true) {
            char c = next();
            if (c == '"')
                return out.toString();
            if (c != '\\') {
                out.append(c);
                continue;
            }
            char escaped = next();
            switch (escaped) {
                case 'n': out.append('\n'); break;
                case 'r': out.append('\r'); break;
                case 't': out.append('\t'); break;
                case 'b': out.append('\b'); break;
                case 'f': out.append('\f'); break;
                case 'u':
                    if (at + 4 > text.length())
                        throw failure("four hex digits");
                    out.append((char) Integer.parseInt(text.substring(at, at + 4), 16));
                    at += 4;
                    break;
                default: out.append(escaped);
            }
        }
    }

    private Object readNumber() {
        int start = at;
        while (at < text.length() && "+-0123456789.eE".indexOf(text.charAt(at)) >= 0)
            at++;
        String number = text.substring(start, at);
        if (number.isEmpty())
            throw failure("a value");
        if (number.indexOf('.') < 0 && number.indexOf('e') < 0 && number.indexOf('E') < 0) {
            try {
                return Long.valueOf(number);
            } catch (NumberFormatException tooLong) {
                // falls through to a double
            }
        }
        return Double.valueOf(number);
    }

    private void space() {
        while (at < text.length() && Character.isWhitespace(text.charAt(at)))
            at++;
    }

    private char peek() {
        if (at >= text.length())
            throw failure("more text");
        return text.charAt(at);
    }

    private char next() {
        char c = peek();
        at++;
        return c;
    }

    private void expect(char wanted) {
        if (next() != wanted)
            throw failure("'" + wanted + "'");
    }

    private IllegalArgumentException failure(String expected) {
        return new IllegalArgumentException("bad JSON from the deepij worker at character " + at + " (expected "
                + expected + "): " + shorten(text));
    }

    private static String shorten(String text) {
        return text.length() > 200 ? text.substring(0, 200) + "..." : text;
    }

    // --------------------------------------------------------------------------------------------- access
    static String string(Map<String, Object> map, String key) {
        Object value = map.get(key);
        return value == null ? null : value.toString();
    }

    static int integer(Map<String, Object> map, String key, int otherwise) {
        Object value = map.get(key);
        return value instanceof Number ? ((Number) value).intValue() : otherwise;
    }

    static long whole(Map<String, Object> map, String key) {
        Object value = map.get(key);
        if (!(value instanceof Number))
            throw new IllegalArgumentException("the deepij worker's answer lacks the number '" + key + "'");
        return ((Number) value).longValue();
    }

    static double number(Map<String, Object> map, String key, double otherwise) {
        Object value = map.get(key);
        return value instanceof Number ? ((Number) value).doubleValue() : otherwise;
    }

    static boolean flag(Map<String, Object> map, String key) {
        return Boolean.TRUE.equals(map.get(key));
    }

    @SuppressWarnings("unchecked")
    static Map<String, Object> map(Map<String, Object> map, String key) {
        Object value = map.get(key);
        return value instanceof Map ? (Map<String, Object>) value : new LinkedHashMap<String, Object>();
    }

    @SuppressWarnings("unchecked")
    static List<Map<String, Object>> maps(Map<String, Object> map, String key) {
        List<Map<String, Object>> list = new ArrayList<Map<String, Object>>();
        Object value = map.get(key);
        if (value instanceof List)
            for (Object item : (List<Object>) value)
                if (item instanceof Map)
                    list.add((Map<String, Object>) item);
        return list;
    }

    @SuppressWarnings("unchecked")
    static List<String> strings(Map<String, Object> map, String key) {
        List<String> list = new ArrayList<String>();
        Object value = map.get(key);
        if (value instanceof List)
            for (Object item : (List<Object>) value)
                list.add(item == null ? null : item.toString());
        return list;
    }

    /** A map from alternating keys and values, for requests. */
    static Map<String, Object> of(Object... keysAndValues) {
        Map<String, Object> map = new LinkedHashMap<String, Object>();
        for (int i = 0; i + 1 < keysAndValues.length; i += 2)
            map.put((String) keysAndValues[i], keysAndValues[i + 1]);
        return map;
    }
}
